/* Out-of-line wrappers for the DPDK 22.11 static-inline functions, macros and TLS variables that
 * the Rust side needs. Each one is a single call: keep any logic in Rust. */
#include "wrapper.h"

uint16_t fg_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t fg_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *fg_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int fg_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void fg_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

char *fg_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

void *fg_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t fg_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t fg_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

uint64_t fg_rdtsc(void)
{
	return rte_rdtsc();
}

void fg_pause(void)
{
	rte_pause();
}

int fg_errno(void)
{
	return rte_errno;
}

void fg_prefetch0(const void *p)
{
	rte_prefetch0(p);
}

unsigned int fg_lcore_id(void)
{
	return rte_lcore_id();
}

unsigned int fg_socket_id(void)
{
	return rte_socket_id();
}

void fg_mbuf_layout(struct fg_mbuf_layout *out)
{
	out->size = sizeof(struct rte_mbuf);
	out->align = _Alignof(struct rte_mbuf);
	out->buf_addr = offsetof(struct rte_mbuf, buf_addr);
	out->data_off = offsetof(struct rte_mbuf, data_off);
	out->refcnt = offsetof(struct rte_mbuf, refcnt);
	out->nb_segs = offsetof(struct rte_mbuf, nb_segs);
	out->port = offsetof(struct rte_mbuf, port);
	out->ol_flags = offsetof(struct rte_mbuf, ol_flags);
	out->pkt_len = offsetof(struct rte_mbuf, pkt_len);
	out->data_len = offsetof(struct rte_mbuf, data_len);
	out->pool = offsetof(struct rte_mbuf, pool);
	out->next = offsetof(struct rte_mbuf, next);
}
