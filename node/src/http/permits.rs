//! A bound on something held at once, in all and per client address: open connections on an
//! HTTP address, exports streaming. A permit is taken without waiting (or refused, saying which
//! bound is full) and given back when it is dropped, wherever that happens: at the end of a
//! connection, or when an export's body stream ends or is dropped with its connection.
//!
//! Why per address and not only in all: one visitor must not be able to take every slot. A
//! client address is an IPv4 address, or an IPv6 /64 (one subscriber's usual allocation, within
//! which addresses cost nothing to change). Behind a reverse proxy every visitor shares the
//! proxy's address: the proxy's own limits apply there (`X-Forwarded-For` is not trusted, as
//! anyone can write it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Which bound refused a permit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// Every slot is taken.
    Total,
    /// The client's address holds its share.
    PerAddress,
}

/// Slots, in all and per client address.
#[derive(Debug)]
pub struct AddressLimit {
    total: usize,
    per_address: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    /// Only addresses that hold a slot: at most `total` entries.
    by_address: HashMap<AddressKey, usize>,
}

/// A client address as the bounds count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AddressKey {
    V4(u32),
    /// The first 64 bits.
    V6(u64),
}

impl AddressKey {
    fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4.into()),
                None => AddressKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// One slot, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    limit: Arc<AddressLimit>,
    key: AddressKey,
}

impl AddressLimit {
    /// At most `total` slots held at once, and `per_address` by any one client address.
    pub fn new(total: usize, per_address: usize) -> Arc<AddressLimit> {
        Arc::new(AddressLimit {
            total,
            per_address,
            held: Mutex::default(),
        })
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn per_address(&self) -> usize {
        self.per_address
    }

    /// A slot for `ip`, now, or which bound is full. The client's own share is checked first,
    /// so that a client that holds its share is told so whatever the others hold.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Full> {
        let key = AddressKey::of(ip);
        let mut held = self.lock();
        let mine = held.by_address.get(&key).copied().unwrap_or(0);
        if mine >= self.per_address {
            return Err(Full::PerAddress);
        }
        if held.total >= self.total {
            return Err(Full::Total);
        }
        held.total += 1;
        held.by_address.insert(key, mine + 1);
        Ok(Permit {
            limit: self.clone(),
            key,
        })
    }

    /// Slots held now.
    pub fn held(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // The counts stay consistent whatever panicked elsewhere: every change is one statement.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = self.limit.lock();
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.by_address.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn bounds_each_address_and_the_total_and_gives_slots_back_when_dropped() {
        let limit = AddressLimit::new(3, 2);
        let a1 = limit.try_acquire(ip("192.0.2.1"));
        let a2 = limit.try_acquire(ip("192.0.2.1"));
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(
            limit.try_acquire(ip("192.0.2.1")).err(),
            Some(Full::PerAddress)
        );
        let b1 = limit.try_acquire(ip("192.0.2.2"));
        assert!(b1.is_ok());
        assert_eq!(limit.try_acquire(ip("192.0.2.3")).err(), Some(Full::Total));
        // Its own share is named first.
        assert_eq!(
            limit.try_acquire(ip("192.0.2.1")).err(),
            Some(Full::PerAddress)
        );
        drop(a1);
        assert_eq!(limit.held(), 2);
        let c1 = limit.try_acquire(ip("192.0.2.3"));
        assert!(c1.is_ok());
        drop((a2, b1, c1));
        assert_eq!(limit.held(), 0);
        assert!(limit.lock().by_address.is_empty(), "no entry left behind");
    }

    #[test]
    fn an_ipv6_64_is_one_address_and_a_mapped_ipv4_is_its_ipv4() {
        let limit = AddressLimit::new(10, 1);
        let _a = limit.try_acquire(ip("2001:db8:1:2::1"));
        assert_eq!(
            limit.try_acquire(ip("2001:db8:1:2:ffff::9")).err(),
            Some(Full::PerAddress)
        );
        assert!(limit.try_acquire(ip("2001:db8:1:3::1")).is_ok());
        let _b = limit.try_acquire(ip("198.51.100.7"));
        assert_eq!(
            limit.try_acquire(ip("::ffff:198.51.100.7")).err(),
            Some(Full::PerAddress)
        );
    }
}
