//! Who may hold a connection to a listener: at most `max_connections_per_ip` per client
//! address and `max_connections` in all. When the listener is full, the oldest connection
//! that has not yet sent an authenticated request is evicted to make room, so anonymous
//! sockets (slowloris, idle keep-alive, floods) can never lock signed callers out: a signed
//! caller's new connection gets in, and once it has authenticated it cannot be evicted.

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
    /// Connections not yet authenticated, oldest first (ids increase with accept order).
    anonymous: BTreeMap<u64, Arc<Notify>>,
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

    /// Admits a connection from `ip`, evicting the oldest anonymous one if the listener is
    /// full.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let mut s = self.lock();
        if s.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        if s.total >= self.max_total {
            // The evicted connection releases its place when its task sees the notice;
            // until then the listener runs over by the connections being evicted.
            match s.anonymous.pop_first() {
                Some((_, victim)) => victim.notify_one(),
                None => return Err(Refusal::Full),
            }
        }
        *s.per_ip.entry(ip).or_insert(0) += 1;
        s.total += 1;
        let id = s.next_id;
        s.next_id += 1;
        let evict = Arc::new(Notify::new());
        s.anonymous.insert(id, Arc::clone(&evict));
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
}

impl Ticket {
    /// The connection sent an authenticated request: it may no longer be evicted.
    pub fn authenticated(&self) {
        self.admission.lock().anonymous.remove(&self.id);
    }

    /// Resolves when the listener evicts this connection to make room.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = self.admission.lock();
        s.anonymous.remove(&self.id);
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
