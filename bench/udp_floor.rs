//! The kernel's floor for the capacity target: what N two-way G.711 calls cost in UDP
//! system calls alone on this machine, with no RTP, no pacing logic and no engine.
//!
//! Two threads stand in for the two sides of `bench/run.sh`:
//! - "engine": one socket per call (as the engine must have: a port pair per call); at each
//!   call's 20 ms slot one `recv_from` (the caller's packet) and one `send_to` (a 172-byte
//!   datagram back): the least any engine with a socket per call does.
//! - "caller": the load tool's way, batched: one socket for every call, one `sendmmsg` per
//!   millisecond for the calls due then, and `recvmmsg` until empty.
//!
//! Each thread's CPU time comes from `getrusage(RUSAGE_THREAD)`. The report gives, per side,
//! microseconds of CPU per packet sent-and-received and the cores N calls need.
//!
//! Run: `cargo bench --bench udp_floor -- [calls] [seconds] [connected] [read2]` (default
//! 1000 calls, 10 s; `connected`: the engine's sockets `connect()` to the caller and
//! `send()`; `read2`: the engine reads each socket every second slot with one `recvmmsg`,
//! as `engine/media.rs` does, instead of one `recv_from` per slot).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use guichet::engine::udp::{RecvBatch, SendBatch};

const PACKET: usize = 172; // 12-byte RTP header + 160 bytes of G.711
const PTIME: Duration = Duration::from_millis(20);
const TICK: Duration = Duration::from_millis(1);

fn thread_cpu() -> Duration {
    // SAFETY: getrusage writes one rusage struct into the zeroed value we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv =
        |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn bind() -> UdpSocket {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).expect("socket");
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().expect("addr").into())
        .expect("bind");
    s.set_nonblocking(true).expect("nonblocking");
    s.into()
}

/// Run `tick(slot, period)` every millisecond from `first` until `stop`, where `slot` is
/// the millisecond within the 20 ms period; it returns (sent, received).
fn ticking(
    stop: &AtomicBool,
    first: Instant,
    mut tick: impl FnMut(usize, u64) -> (u64, u64),
) -> Side {
    let (mut sent, mut received) = (0u64, 0u64);
    let cpu0 = thread_cpu();
    let mut at = first;
    let (mut slot, mut period) = (0usize, 0u64);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let (s, r) = tick(slot, period);
        sent += s;
        received += r;
        slot = (slot + 1) % 20;
        if slot == 0 {
            period += 1;
        }
        at += TICK;
    }
    Side {
        cpu: thread_cpu() - cpu0,
        sent,
        received,
        wall: first.elapsed(),
    }
}

struct Side {
    cpu: Duration,
    sent: u64,
    received: u64,
    wall: Duration,
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("udp_floor: a measurement, run it with `cargo bench --bench udp_floor`");
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let calls: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let secs: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    // "connected": the engine sockets connect() to the caller and use send().
    let connected = args.iter().skip(2).any(|a| a == "connected");
    // "read2": the engine reads each socket every second slot with one recvmmsg (as the
    // engine does) instead of one recv_from per slot.
    let read2 = args.iter().skip(2).any(|a| a == "read2");
    let run_for = Duration::from_secs(secs);

    let engine_socks: Vec<UdpSocket> = (0..calls).map(|_| bind()).collect();
    let engine_addrs: Vec<SocketAddr> = engine_socks
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect();
    let caller = bind();
    let caller_addr = caller.local_addr().expect("addr");
    if connected {
        for s in &engine_socks {
            s.connect(caller_addr).expect("connect");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now() + Duration::from_millis(50);

    let engine = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let payload = [0x55u8; PACKET];
            let mut buf = [0u8; 2048];
            let mut batch = RecvBatch::new(16, 2048);
            ticking(&stop, start, move |slot, period| {
                let (mut sent, mut received) = (0u64, 0u64);
                // Calls whose slot is this millisecond of the 20 ms period.
                for (i, s) in engine_socks.iter().enumerate() {
                    if i % 20 != slot {
                        continue;
                    }
                    if read2 {
                        if (period + i as u64).is_multiple_of(2) {
                            received += batch.recv(s).unwrap_or(0) as u64;
                        }
                    } else if s.recv_from(&mut buf).is_ok() {
                        received += 1;
                    }
                    let ok = if connected {
                        s.send(&payload).is_ok()
                    } else {
                        s.send_to(&payload, caller_addr).is_ok()
                    };
                    if ok {
                        sent += 1;
                    }
                }
                (sent, received)
            })
        })
    };
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let payload = [0xAAu8; PACKET];
            let mut rx = RecvBatch::new(64, 2048);
            let mut tx = SendBatch::new();
            ticking(&stop, start + Duration::from_micros(500), move |slot, _| {
                for (i, a) in engine_addrs.iter().enumerate() {
                    if i % 20 == slot {
                        tx.push(&payload, *a);
                    }
                }
                let sent = tx.flush(&caller).0;
                let mut received = 0u64;
                loop {
                    let n = rx.recv(&caller).unwrap_or(0);
                    received += n as u64;
                    if n < rx.capacity() {
                        break;
                    }
                }
                (sent, received)
            })
        })
    };
    std::thread::sleep(run_for + Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let engine = engine.join().expect("engine thread");
    let load = load.join().expect("caller thread");

    let ideal = calls as f64 * run_for.as_secs_f64() / PTIME.as_secs_f64();
    println!("udp_floor: {calls} two-way calls for {secs} s (ideal {ideal:.0} packets each way)");
    for (name, side) in [
        ("engine (socket per call)", &engine),
        ("caller (batched)", &load),
    ] {
        let cores = side.cpu.as_secs_f64() / side.wall.as_secs_f64();
        let per_packet = side.cpu.as_secs_f64() * 1e6 / (side.sent + side.received).max(1) as f64;
        println!(
            "  {name:26} sent {:>9} received {:>9}  CPU {:6.2} s = {:5.1} % of a core  {per_packet:.2} us per packet",
            side.sent,
            side.received,
            side.cpu.as_secs_f64(),
            cores * 100.0,
        );
    }
    let total = (engine.cpu + load.cpu).as_secs_f64() / engine.wall.as_secs_f64();
    println!(
        "  both sides: {:.1} % of a core, {:.2} cores for 3,000 calls at this cost per call",
        total * 100.0,
        total * 3000.0 / calls as f64
    );
}
