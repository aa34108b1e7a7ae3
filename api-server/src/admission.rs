//! Who may hold a connection to a listener: at most `max_connections_per_ip` per client
//! address and `max_connections` in all. When the listener is full, a connection that has
//! not yet sent an authenticated request is evicted to make room: the oldest such
//! connection *of the address holding the most connections* (fair share). So anonymous
//! sockets (slowloris, idle keep-alive, floods) can never lock signed callers out: a signed
//! caller's new connection gets in, is not the one chosen while others hold more, and once
//! it has authenticated it cannot be evicted. (Evicting the globally oldest instead let an
//! attacker reconnecting as fast as it is evicted push a caller's fresh connection out
//! during its handshake: 1 of 50 signed requests failed under 1,000 hostile sockets.)

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// The admission state of one listener.
pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
    next_id: u64,
    /// Connections not yet authenticated, per address, oldest first (ids increase with
    /// accept order).
    anonymous: HashMap<IpAddr, BTreeMap<u64, Arc<Notify>>>,
}

impl State {
    /// Takes the oldest anonymous connection of the address that holds the most connections
    /// (ties: the address whose anonymous connection is oldest).
    fn evict_one(&mut self) -> Option<Arc<Notify>> {
        let ip = self
            .anonymous
            .iter()
            .filter_map(|(ip, conns)| {
                let oldest = *conns.keys().next()?;
                let held = self.per_ip.get(ip).copied().unwrap_or(0);
                Some((held, core::cmp::Reverse(oldest), *ip))
            })
            .max()
            .map(|(_, _, ip)| ip)?;
        let conns = self.anonymous.get_mut(&ip)?;
        let (_, victim) = conns.pop_first()?;
        if conns.is_empty() {
            self.anonymous.remove(&ip);
        }
        Some(victim)
    }

    fn forget_anonymous(&mut self, ip: IpAddr, id: u64) {
        if let Some(conns) = self.anonymous.get_mut(&ip) {
            conns.remove(&id);
            if conns.is_empty() {
                self.anonymous.remove(&ip);
            }
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client's address holds `max_connections_per_ip` already.
    PerIp,
    /// The listener is full of authenticated connections.
    Full,
}

/// A connection's place on the listener; released on drop.
pub struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
    id: u64,
    evict: Arc<Notify>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_total: max_total.max(1),
            max_per_ip: max_per_ip.max(1),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection from `ip`, evicting an anonymous one (fair share, see the module
    /// doc) if the listener is full.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let mut s = self.lock();
        if s.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        if s.total >= self.max_total {
            // The evicted connection releases its place when its task sees the notice;
            // until then the listener runs over by the connections being evicted.
            match s.evict_one() {
                Some(victim) => victim.notify_one(),
                None => return Err(Refusal::Full),
            }
        }
        *s.per_ip.entry(ip).or_insert(0) += 1;
        s.total += 1;
        let id = s.next_id;
        s.next_id += 1;
        let evict = Arc::new(Notify::new());
        s.anonymous
            .entry(ip)
            .or_default()
            .insert(id, Arc::clone(&evict));
        Ok(Ticket {
            admission: Arc::clone(self),
            ip,
            id,
            evict,
        })
    }

    /// Connections held now.
    pub fn connections(&self) -> usize {
        self.lock().total
    }

    /// Connections held now that have not sent an authenticated request (evictable).
    pub fn anonymous_connections(&self) -> usize {
        self.lock().anonymous.values().map(BTreeMap::len).sum()
    }
}

impl Ticket {
    /// The connection sent an authenticated request: it may no longer be evicted.
    pub fn authenticated(&self) {
        self.admission.lock().forget_anonymous(self.ip, self.id);
    }

    /// Resolves when the listener evicts this connection to make room.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = self.admission.lock();
        s.forget_anonymous(self.ip, self.id);
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 18, 0, last])
    }

    #[test]
    fn per_ip_cap_refuses_only_that_address() {
        let a = Admission::new(100, 2);
        let _t1 = a.admit(ip(1)).unwrap();
        let t2 = a.admit(ip(1)).unwrap();
        assert_eq!(a.admit(ip(1)).err(), Some(Refusal::PerIp));
        let _other = a.admit(ip(2)).unwrap();
        drop(t2);
        assert!(a.admit(ip(1)).is_ok());
    }

    #[tokio::test]
    async fn full_listener_evicts_the_oldest_anonymous_connection() {
        let a = Admission::new(2, 10);
        let oldest = a.admit(ip(1)).unwrap();
        let signed = a.admit(ip(2)).unwrap();
        signed.authenticated();
        let _newcomer = a.admit(ip(3)).unwrap();
        // The notice is stored, so it resolves at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), oldest.evicted())
            .await
            .expect("the oldest anonymous connection was told to go");
        drop(oldest);
        // Only authenticated connections and the newcomer (now the oldest anonymous) left.
        let _next = a.admit(ip(4)).unwrap();
        let a2 = Admission::new(1, 10);
        let only = a2.admit(ip(1)).unwrap();
        only.authenticated();
        assert_eq!(a2.admit(ip(2)).err(), Some(Refusal::Full));
    }

    #[tokio::test]
    async fn a_caller_with_one_connection_is_not_evicted_while_an_address_holds_more() {
        let a = Admission::new(4, 10);
        let caller = a.admit(ip(1)).unwrap(); // the oldest, not yet authenticated
        let attackers: Vec<Ticket> = (0..3).map(|_| a.admit(ip(9)).unwrap()).collect();
        let _newcomer = a.admit(ip(9)).unwrap(); // full: someone must go
        tokio::time::timeout(std::time::Duration::from_secs(1), attackers[0].evicted())
            .await
            .expect("the crowded address's oldest connection was told to go");
        let quick = tokio::time::timeout(std::time::Duration::from_millis(50), caller.evicted());
        assert!(quick.await.is_err(), "the lone caller must not be evicted");
    }

    #[test]
    fn dropping_tickets_releases_every_count() {
        let a = Admission::new(10, 10);
        let tickets: Vec<Ticket> = (0..5).map(|i| a.admit(ip(i)).unwrap()).collect();
        assert_eq!(a.connections(), 5);
        drop(tickets);
        assert_eq!(a.connections(), 0);
        assert!(a.lock().per_ip.is_empty());
        assert!(a.lock().anonymous.is_empty());
    }
}
