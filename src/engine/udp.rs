//! Batched, non-blocking UDP for the media paths: many datagrams per system call.
//!
//! Owns thin `unsafe` wrappers over Linux `recvmmsg(2)` and
//! `sendmmsg(2)` (and `SO_TIMESTAMPNS` receive timestamps), on plain `std` sockets that
//! are **not** registered with tokio, so a received packet costs no epoll event and no
//! reactor work. Other systems get the same API over one `recv_from`/`send_to` per
//! datagram.
//!
//! Contract:
//! - [`RecvBatch::recv`] reads what is queued on a socket, up to the batch's capacity, in
//!   one call, without blocking: `Ok(0)` when nothing is waiting. [`RecvBatch::get`] then
//!   gives each datagram's bytes, source and (when enabled with
//!   [`enable_rx_timestamps`]) the kernel's arrival time.
//! - [`SendBatch::push`] copies a datagram and its destination; [`SendBatch::flush`] sends
//!   them all from one socket in as few calls as the kernel allows and returns how many
//!   went out and how many failed (a full buffer drops the datagram: media is never
//!   awaited on).
//!
//! Why (measured in bench/README.md): the engine reads each call's socket once per 20 ms
//! slot and the load tool moves thousands of datagrams per wake-up over one socket; a
//! system call per datagram, plus an epoll event per arrival, was most of their CPU.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::SystemTime;

/// One received datagram, borrowed from its [`RecvBatch`].
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub bytes: &'a [u8],
    pub from: SocketAddr,
    /// When the kernel received it (only with [`enable_rx_timestamps`]).
    pub stamp: Option<SystemTime>,
}

/// Receive buffers for up to `capacity` datagrams of up to `slot` bytes each.
pub struct RecvBatch {
    slot: usize,
    data: Vec<u8>,
    lens: Vec<usize>,
    from: Vec<Option<SocketAddr>>,
    stamps: Vec<Option<SystemTime>>,
    count: usize,
    #[cfg(target_os = "linux")]
    sys: linux::RecvScratch,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.lens.len())
            .field("slot", &self.slot)
            .field("count", &self.count)
            .finish()
    }
}

impl RecvBatch {
    /// Room for `capacity` (at least 1) datagrams of `slot` (at least 1) bytes; a longer
    /// datagram is truncated to `slot` bytes.
    pub fn new(capacity: usize, slot: usize) -> RecvBatch {
        let capacity = capacity.max(1);
        let slot = slot.max(1);
        RecvBatch {
            slot,
            data: vec![0; capacity * slot],
            lens: vec![0; capacity],
            from: vec![None; capacity],
            stamps: vec![None; capacity],
            count: 0,
            #[cfg(target_os = "linux")]
            sys: linux::RecvScratch::new(capacity),
        }
    }

    /// How many datagrams one [`Self::recv`] can return.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Datagrams held since the last [`Self::recv`].
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Read what is queued on `socket` (non-blocking): the number of datagrams, 0 when
    /// none is waiting. Errors other than "would block" (an ICMP report of an earlier
    /// send, say) are returned once; the next call reads on.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.count = 0;
        #[cfg(target_os = "linux")]
        let result = linux::recv(self, socket);
        #[cfg(not(target_os = "linux"))]
        let result = portable::recv(self, socket);
        match result {
            Ok(n) => {
                self.count = n;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Datagram `i` of the last [`Self::recv`].
    pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
        if i >= self.count {
            return None;
        }
        let start = i * self.slot;
        let len = (*self.lens.get(i)?).min(self.slot);
        Some(Datagram {
            bytes: self.data.get(start..start + len)?,
            from: (*self.from.get(i)?)?,
            stamp: *self.stamps.get(i)?,
        })
    }

    /// Every datagram of the last [`Self::recv`], in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = Datagram<'_>> {
        (0..self.count).filter_map(|i| self.get(i))
    }
}

/// Datagrams waiting to go out of one socket.
#[derive(Debug, Default)]
pub struct SendBatch {
    data: Vec<u8>,
    items: Vec<(usize, usize, SocketAddr)>,
}

impl SendBatch {
    pub fn new() -> SendBatch {
        SendBatch::default()
    }

    /// Queue a copy of `bytes` for `dest`.
    pub fn push(&mut self, bytes: &[u8], dest: SocketAddr) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.items.push((start, bytes.len(), dest));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Send every queued datagram from `socket` (non-blocking) and empty the batch:
    /// (sent, failed). A datagram the kernel refuses (full buffer, unreachable) is dropped
    /// and counted as failed; the rest still go.
    pub fn flush(&mut self, socket: &UdpSocket) -> (u64, u64) {
        #[cfg(target_os = "linux")]
        let counts = linux::send(self, socket);
        #[cfg(not(target_os = "linux"))]
        let counts = portable::send(self, socket);
        self.data.clear();
        self.items.clear();
        counts
    }
}

/// Ask the kernel to stamp each datagram received on `socket` with its arrival time
/// (`SO_TIMESTAMPNS`), returned by [`RecvBatch::get`]. Not supported off Linux.
pub fn enable_rx_timestamps(socket: &UdpSocket) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    return linux::enable_rx_timestamps(socket);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "receive timestamps need Linux",
        ))
    }
}

/// Ask for `bytes` of kernel receive buffer on `socket` beyond `net.core.rmem_max` when the
/// process may (`SO_RCVBUFFORCE`, CAP_NET_ADMIN); otherwise the ordinary, capped request.
/// Returns the size the kernel reports afterwards (it doubles the request for overhead).
pub fn force_recv_buffer(socket: &impl std::os::fd::AsFd, bytes: usize) -> io::Result<usize> {
    let sock = socket2::SockRef::from(socket);
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: a valid socket fd, a pointer to a c_int and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_fd().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            sock.set_recv_buffer_size(bytes)?;
        }
    }
    #[cfg(not(target_os = "linux"))]
    sock.set_recv_buffer_size(bytes)?;
    sock.recv_buffer_size()
}

#[cfg(not(target_os = "linux"))]
mod portable {
    use super::*;

    pub(super) fn recv(batch: &mut RecvBatch, socket: &UdpSocket) -> io::Result<usize> {
        let mut n = 0;
        while n < batch.capacity() {
            let start = n * batch.slot;
            let buf = &mut batch.data[start..start + batch.slot];
            match socket.recv_from(buf) {
                Ok((len, from)) => {
                    batch.lens[n] = len;
                    batch.from[n] = Some(from);
                    batch.stamps[n] = None;
                    n += 1;
                }
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(n)
    }

    pub(super) fn send(batch: &SendBatch, socket: &UdpSocket) -> (u64, u64) {
        let (mut sent, mut failed) = (0, 0);
        for &(start, len, dest) in &batch.items {
            match socket.send_to(&batch.data[start..start + len], dest) {
                Ok(_) => sent += 1,
                Err(_) => failed += 1,
            }
        }
        (sent, failed)
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, SystemTime};

    use super::{RecvBatch, SendBatch};

    /// Room for one `SCM_TIMESTAMPNS` control message (header + timespec, aligned), in
    /// u64 words so it is aligned for `cmsghdr`.
    const CONTROL_WORDS: usize = 8;
    /// Messages per `sendmmsg` call (the kernel's UIO_MAXIOV bound is 1024).
    const SEND_CHUNK: usize = 256;

    /// The kernel-facing arrays of a [`RecvBatch`]. The raw pointers inside are written
    /// afresh before every call and are not used after it returns.
    pub(super) struct RecvScratch {
        headers: Vec<libc::mmsghdr>,
        iovecs: Vec<libc::iovec>,
        names: Vec<libc::sockaddr_storage>,
        control: Vec<[u64; CONTROL_WORDS]>,
    }

    // SAFETY: the raw pointers in `headers`/`iovecs` are only set and dereferenced inside
    // `recv`, which holds `&mut RecvBatch` (owner of every buffer they point to) for the
    // whole system call; between calls they are stale values never read. Moving the batch
    // to another thread therefore shares nothing.
    unsafe impl Send for RecvScratch {}

    impl RecvScratch {
        pub(super) fn new(capacity: usize) -> RecvScratch {
            // SAFETY: mmsghdr, iovec and sockaddr_storage are plain C structs for which
            // all-zero bytes are a valid value (null pointers, zero lengths).
            let zeroed = || unsafe { mem::zeroed::<libc::mmsghdr>() };
            RecvScratch {
                headers: (0..capacity).map(|_| zeroed()).collect(),
                iovecs: (0..capacity)
                    .map(|_| libc::iovec {
                        iov_base: std::ptr::null_mut(),
                        iov_len: 0,
                    })
                    .collect(),
                // SAFETY: as above.
                names: (0..capacity)
                    .map(|_| unsafe { mem::zeroed::<libc::sockaddr_storage>() })
                    .collect(),
                control: vec![[0; CONTROL_WORDS]; capacity],
            }
        }
    }

    pub(super) fn enable_rx_timestamps(socket: &UdpSocket) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket fd, a pointer to a c_int and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub(super) fn recv(batch: &mut RecvBatch, socket: &UdpSocket) -> io::Result<usize> {
        let capacity = batch.capacity();
        let slot = batch.slot;
        let data = batch.data.as_mut_ptr();
        let sys = &mut batch.sys;
        for i in 0..capacity {
            let (Some(iov), Some(header), Some(name), Some(control)) = (
                sys.iovecs.get_mut(i),
                sys.headers.get_mut(i),
                sys.names.get_mut(i),
                sys.control.get_mut(i),
            ) else {
                return Err(io::Error::other("receive batch arrays out of step"));
            };
            // SAFETY: i * slot + slot <= data.len() (data holds capacity * slot bytes).
            iov.iov_base = unsafe { data.add(i * slot) }.cast();
            iov.iov_len = slot;
            let hdr = &mut header.msg_hdr;
            hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = iov;
            hdr.msg_iovlen = 1;
            hdr.msg_control = control.as_mut_ptr().cast();
            hdr.msg_controllen = mem::size_of::<[u64; CONTROL_WORDS]>() as _;
            hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        // SAFETY: `headers` holds `capacity` initialised mmsghdr whose pointers reference
        // live buffers of the sizes given (data slots, sockaddr_storage, control words),
        // all owned by `batch`, which is borrowed mutably for the duration of the call.
        let rc = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                sys.headers.as_mut_ptr(),
                capacity as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = usize::try_from(rc).unwrap_or(0).min(capacity);
        for i in 0..n {
            let (Some(header), Some(name)) = (sys.headers.get(i), sys.names.get(i)) else {
                break;
            };
            if let Some(len) = batch.lens.get_mut(i) {
                *len = header.msg_len as usize;
            }
            if let Some(from) = batch.from.get_mut(i) {
                *from = socket_addr(name, header.msg_hdr.msg_namelen);
            }
            if let Some(stamp) = batch.stamps.get_mut(i) {
                *stamp = timestamp(&header.msg_hdr);
            }
        }
        Ok(n)
    }

    fn socket_addr(name: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = len as usize;
        match libc::c_int::from(name.ss_family) {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the kernel wrote a sockaddr_in (family AF_INET, length checked);
                // sockaddr_storage is large and aligned enough for it.
                let sin = unsafe {
                    &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for a sockaddr_in6.
                let sin6 = unsafe {
                    &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn timestamp(hdr: &libc::msghdr) -> Option<SystemTime> {
        if hdr.msg_controllen == 0 || hdr.msg_control.is_null() {
            return None;
        }
        // SAFETY: msg_control/msg_controllen describe the control buffer the kernel filled
        // (its length updated by recvmmsg); CMSG_FIRSTHDR/NXTHDR stay within it.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                let c = &*cmsg;
                if c.cmsg_level == libc::SOL_SOCKET
                    && c.cmsg_type == libc::SCM_TIMESTAMPNS
                    && c.cmsg_len as usize
                        >= libc::CMSG_LEN(mem::size_of::<libc::timespec>() as u32) as usize
                {
                    let ts =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                    let secs = u64::try_from(ts.tv_sec).ok()?;
                    let nanos = u32::try_from(ts.tv_nsec).ok()?;
                    return SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
                }
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
        }
        None
    }

    pub(super) fn send(batch: &SendBatch, socket: &UdpSocket) -> (u64, u64) {
        let (mut sent, mut failed) = (0u64, 0u64);
        let mut names: Vec<socket2::SockAddr> = Vec::with_capacity(SEND_CHUNK);
        let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(SEND_CHUNK);
        let mut headers: Vec<libc::mmsghdr> = Vec::with_capacity(SEND_CHUNK);
        for chunk in batch.items.chunks(SEND_CHUNK) {
            names.clear();
            iovecs.clear();
            headers.clear();
            for &(start, len, dest) in chunk {
                let Some(bytes) = batch.data.get(start..start + len) else {
                    continue;
                };
                names.push(socket2::SockAddr::from(dest));
                iovecs.push(libc::iovec {
                    iov_base: bytes.as_ptr().cast_mut().cast(),
                    iov_len: bytes.len(),
                });
            }
            for (name, iov) in names.iter().zip(iovecs.iter_mut()) {
                // SAFETY: all-zero is a valid mmsghdr; the pointers set below reference
                // `names`, `iovecs` and `batch.data`, which outlive the sendmmsg call and
                // are not moved or resized until the chunk is done.
                let mut header: libc::mmsghdr = unsafe { mem::zeroed() };
                header.msg_hdr.msg_name = name.as_ptr().cast_mut().cast();
                header.msg_hdr.msg_namelen = name.len();
                header.msg_hdr.msg_iov = iov;
                header.msg_hdr.msg_iovlen = 1;
                headers.push(header);
            }
            let mut offset = 0;
            while offset < headers.len() {
                let rest = headers.get_mut(offset..).unwrap_or_default();
                // SAFETY: `rest` is a live slice of initialised mmsghdr (see above); the
                // kernel only reads the messages and writes msg_len.
                let rc = unsafe {
                    libc::sendmmsg(
                        socket.as_raw_fd(),
                        rest.as_mut_ptr(),
                        rest.len() as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                if rc > 0 {
                    let n = rc as usize;
                    sent += n as u64;
                    offset += n;
                } else {
                    // The message at `offset` was refused (full buffer, unreachable):
                    // drop it and go on with the next.
                    failed += 1;
                    offset += 1;
                }
            }
        }
        (sent, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn wait_for(
        batch: &mut RecvBatch,
        socket: &UdpSocket,
        want: usize,
    ) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut got = Vec::new();
        for _ in 0..200 {
            let n = batch.recv(socket).unwrap();
            got.extend(batch.iter().map(|d| (d.bytes.to_vec(), d.from)));
            assert!(n <= batch.capacity());
            if got.len() >= want {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        got
    }

    #[test]
    fn nothing_waiting_is_zero_not_an_error() {
        let (a, _b) = pair();
        let mut batch = RecvBatch::new(8, 64);
        assert_eq!(batch.recv(&a).unwrap(), 0);
        assert!(batch.is_empty());
        assert!(batch.get(0).is_none());
    }

    #[test]
    fn a_batch_goes_out_and_comes_back_in_order_with_sources() {
        let (a, b) = pair();
        let (c, _) = pair();
        let dest = b.local_addr().unwrap();
        let mut out = SendBatch::new();
        for i in 0..100u8 {
            out.push(&[i; 20], dest);
        }
        out.push(b"to c", c.local_addr().unwrap());
        assert_eq!(out.len(), 101);
        assert_eq!(out.flush(&a), (101, 0));
        assert!(out.is_empty());

        // Capacity 16: several reads, each at most 16 datagrams.
        let mut batch = RecvBatch::new(16, 64);
        let got = wait_for(&mut batch, &b, 100);
        assert_eq!(got.len(), 100);
        for (i, (bytes, from)) in got.iter().enumerate() {
            assert_eq!(bytes, &vec![i as u8; 20]);
            assert_eq!(*from, a.local_addr().unwrap());
        }
        let got_c = wait_for(&mut RecvBatch::new(4, 64), &c, 1);
        assert_eq!(got_c, vec![(b"to c".to_vec(), a.local_addr().unwrap())]);
    }

    #[test]
    fn a_long_datagram_is_truncated_to_the_slot() {
        let (a, b) = pair();
        a.send_to(&[7u8; 300], b.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(2, 100);
        let got = wait_for(&mut batch, &b, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, vec![7u8; 100]);
    }

    #[test]
    fn ipv6_sources_are_decoded() {
        let Ok(a) = UdpSocket::bind("[::1]:0") else {
            eprintln!("skipped: no IPv6 loopback on this machine");
            return;
        };
        let b = UdpSocket::bind("[::1]:0").unwrap();
        b.set_nonblocking(true).unwrap();
        a.send_to(b"six", b.local_addr().unwrap()).unwrap();
        let got = wait_for(&mut RecvBatch::new(2, 64), &b, 1);
        assert_eq!(got, vec![(b"six".to_vec(), a.local_addr().unwrap())]);
    }

    #[test]
    fn a_refused_datagram_is_counted_and_the_rest_still_go() {
        let (a, b) = pair();
        let mut out = SendBatch::new();
        out.push(b"one", b.local_addr().unwrap());
        // Port 0 is not a valid destination: the kernel refuses this one.
        out.push(b"bad", "127.0.0.1:0".parse().unwrap());
        out.push(b"two", b.local_addr().unwrap());
        assert_eq!(out.flush(&a), (2, 1));
        let got = wait_for(&mut RecvBatch::new(4, 64), &b, 2);
        let bodies: Vec<_> = got.into_iter().map(|(bytes, _)| bytes).collect();
        assert_eq!(bodies, vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn a_receive_buffer_can_be_asked_for() {
        let (a, _) = pair();
        let after = force_recv_buffer(&a, 8 << 20).unwrap();
        // Forced past the cap (root, CAP_NET_ADMIN) or capped at net.core.rmem_max.
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(0);
        assert!(after >= (8 << 20).min(cap), "got {after}, cap {cap}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn kernel_timestamps_are_close_to_the_send_time() {
        let (a, b) = pair();
        enable_rx_timestamps(&b).unwrap();
        let before = SystemTime::now();
        a.send_to(b"t", b.local_addr().unwrap()).unwrap();
        let after = SystemTime::now();
        let mut batch = RecvBatch::new(2, 64);
        for _ in 0..200 {
            if batch.recv(&b).unwrap() > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let stamp = batch
            .get(0)
            .and_then(|d| d.stamp)
            .expect("a stamped datagram");
        assert!(
            stamp >= before - Duration::from_millis(1),
            "{stamp:?} {before:?}"
        );
        assert!(
            stamp <= after + Duration::from_millis(1),
            "{stamp:?} {after:?}"
        );
        // Without the option there is no stamp.
        let (c, d) = pair();
        c.send_to(b"u", d.local_addr().unwrap()).unwrap();
        let mut plain = RecvBatch::new(2, 64);
        for _ in 0..200 {
            if plain.recv(&d).unwrap() > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(plain.get(0).map(|d| d.stamp), Some(None));
    }
}
