/* Headers bindgen reads to generate `sys.rs`, plus the declarations of the shim in shim.c.
 * Keep this list small: bindgen's allowlist in build.rs decides what reaches Rust. */
#ifndef FLOWGATE_WRAPPER_H
#define FLOWGATE_WRAPPER_H

#include <stdint.h>
#include <stddef.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_version.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>

/* Out-of-line copies of DPDK static inlines and macros (see shim.c). Prefixed `fg_` so they can
 * never clash with a real DPDK symbol. */
uint16_t fg_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t fg_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts);
struct rte_mbuf *fg_pktmbuf_alloc(struct rte_mempool *mp);
int fg_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count);
void fg_pktmbuf_free(struct rte_mbuf *m);
char *fg_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
void *fg_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t fg_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t fg_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint64_t fg_rdtsc(void);
void fg_pause(void);
int fg_errno(void);
void fg_prefetch0(const void *p);
unsigned int fg_lcore_id(void);
unsigned int fg_socket_id(void);

/* Layout of struct rte_mbuf as the C compiler sees it; tests/layout.rs compares it with bindgen's. */
struct fg_mbuf_layout {
	size_t size;
	size_t align;
	size_t buf_addr;
	size_t data_off;
	size_t refcnt;
	size_t nb_segs;
	size_t port;
	size_t ol_flags;
	size_t pkt_len;
	size_t data_len;
	size_t pool;
	size_t next;
};
void fg_mbuf_layout(struct fg_mbuf_layout *out);

#endif
