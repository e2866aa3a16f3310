//! Media workers over real loopback UDP: a test peer socket plays the far end of the call,
//! sends RTP (20 ms PCMU frames, RFC 4733 events, in-band tones) to the call's port and
//! receives ours. Prompts are WAVs generated into a temporary directory.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guichet::engine::media::{
    CallMedia, MediaConfig, MediaError, MediaNotice, MediaWorkers, PlayItem,
};
use guichet::ids::CallKey;
use guichet::media::dtmf::tones::{ToneLevel, dtmf_sequence};
use guichet::media::dtmf::{Digit, DtmfSource};
use guichet::media::g711::Law;
use guichet::media::prompts::PromptStore;
use guichet::sdp::{Codec, Direction, Session};
use rtp_types::RtpPacket;
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const FRAME: usize = 160;
const TE: u8 = 101;

/// A WAV of a sine at 8 kHz, `ms` long.
fn write_tone(path: &Path, freq: f64, ms: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(ms * 8) {
        let t = f64::from(i) / 8000.0;
        w.write_sample((8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// `hello` (2 s, 100 frames), `short` (0.5 s), `moh/music` (0.4 s).
fn prompts() -> (tempfile::TempDir, Arc<PromptStore>) {
    let dir = tempfile::tempdir().unwrap();
    write_tone(&dir.path().join("hello.wav"), 440.0, 2000);
    write_tone(&dir.path().join("short.wav"), 523.0, 500);
    write_tone(&dir.path().join("moh/music.wav"), 330.0, 400);
    let store = PromptStore::load_dir(dir.path()).unwrap();
    (dir, Arc::new(store))
}

fn config(first: u16, last: u16, workers: usize) -> MediaConfig {
    MediaConfig {
        workers,
        rtp_bind: LOCALHOST,
        port_first: first,
        port_last: last,
        ..MediaConfig::default()
    }
}

fn session(remote: SocketAddr, telephone_event: Option<u8>) -> Session {
    Session {
        remote: Some(remote),
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event,
        ptime_ms: 20,
        local_direction: Direction::SendRecv,
    }
}

fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, (u8::from(marker) << 7) | pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The far end of a call.
struct Peer {
    sock: UdpSocket,
    dest: SocketAddr,
    seq: u16,
    ts: u32,
}

impl Peer {
    async fn new() -> Peer {
        Peer {
            sock: UdpSocket::bind((LOCALHOST, 0)).await.unwrap(),
            dest: SocketAddr::new(LOCALHOST, 9),
            seq: 1000,
            ts: 50_000,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn connect(&mut self, media: &CallMedia) {
        self.dest = SocketAddr::new(LOCALHOST, media.local_port());
    }

    async fn send_audio(&mut self, payload: &[u8]) {
        let p = rtp(0, false, self.seq, self.ts, 0xABCD, payload);
        self.sock.send_to(&p, self.dest).await.unwrap();
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(payload.len() as u32);
    }

    /// One key press as RFC 4733 packets (updates, then the end packet three times, plus
    /// `extra_ends` more copies), 10 ms apart.
    async fn press(&mut self, digit: Digit, extra_ends: usize) {
        let mut events = guichet::media::dtmf::rfc4733::TelephoneEvent::press(digit, 10, 800, 160);
        let end = *events.last().unwrap();
        events.extend(std::iter::repeat_n(end, extra_ends));
        for (i, ev) in events.iter().enumerate() {
            let p = rtp(TE, i == 0, self.seq, self.ts, 0xABCD, &ev.to_bytes());
            self.sock.send_to(&p, self.dest).await.unwrap();
            self.seq = self.seq.wrapping_add(1);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.ts = self.ts.wrapping_add(800);
    }

    /// Receive `n` RTP packets (ignoring RTCP-looking ones), with their arrival times.
    async fn receive(&self, n: usize, within: Duration) -> Vec<(Instant, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        let end = tokio::time::Instant::now() + within;
        while out.len() < n {
            let Ok(Ok((len, _))) =
                tokio::time::timeout_at(end, self.sock.recv_from(&mut buf)).await
            else {
                break;
            };
            let bytes = buf[..len].to_vec();
            if RtpPacket::parse(&bytes).is_ok_and(|p| p.payload_type() < 64) {
                out.push((Instant::now(), bytes));
            }
        }
        out
    }
}

/// Notices until `pred` matches one (returned last), or `None` after `within`.
async fn wait_for(
    media: &mut CallMedia,
    within: Duration,
    pred: impl Fn(&MediaNotice) -> bool,
) -> (Vec<MediaNotice>, Option<MediaNotice>) {
    let mut seen = Vec::new();
    let end = tokio::time::Instant::now() + within;
    while let Ok(Some(n)) = tokio::time::timeout_at(end, media.next_notice()).await {
        if pred(&n) {
            return (seen, Some(n));
        }
        seen.push(n);
    }
    (seen, None)
}

/// All notices within `within`.
async fn notices_for(media: &mut CallMedia, within: Duration) -> Vec<MediaNotice> {
    wait_for(media, within, |_| false).await.0
}

fn digits(notices: &[MediaNotice]) -> Vec<(Digit, DtmfSource)> {
    notices
        .iter()
        .filter_map(|n| match n {
            MediaNotice::Digit { digit, source } => Some((*digit, *source)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_playback_arrives_paced_then_silence() {
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(41000, 41009, 1), store.clone());
    let peer = Peer::new().await;
    let mut media = workers
        .open(CallKey(1), &session(peer.addr(), Some(TE)))
        .unwrap();
    media
        .play(vec![PlayItem::Prompt("hello".into())], true)
        .unwrap();

    let packets = peer.receive(150, Duration::from_secs(6)).await;
    assert_eq!(packets.len(), 150);
    let parsed: Vec<RtpPacket<'_>> = packets
        .iter()
        .map(|(_, b)| RtpPacket::parse(b).unwrap())
        .collect();
    let prompt = store.get("hello").unwrap().audio(Law::Ulaw).clone();
    let frames: Vec<&[u8]> = prompt.chunks(FRAME).collect();
    assert_eq!(frames.len(), 100);
    assert!(parsed[0].marker_bit(), "marker on the first packet");
    for (i, p) in parsed.iter().enumerate() {
        assert_eq!(p.payload_type(), 0);
        assert_eq!(p.ssrc(), parsed[0].ssrc());
        assert_eq!(
            p.sequence_number(),
            parsed[0].sequence_number().wrapping_add(i as u16),
            "sequence continuity at {i}"
        );
        assert_eq!(
            p.timestamp(),
            parsed[0].timestamp().wrapping_add(160 * i as u32),
            "timestamp step at {i}"
        );
        if i < 100 {
            assert_eq!(p.payload(), frames[i], "prompt frame {i}");
        } else {
            assert!(p.payload().iter().all(|&b| b == 0xFF), "silence at {i}");
            assert!(!p.marker_bit());
        }
        if i > 0 && i < 100 {
            assert!(!p.marker_bit(), "no marker inside the prompt ({i})");
        }
    }
    // Pacing: 149 gaps of 20 ms; generous bounds (a functional test, not a benchmark).
    let span = packets[149].0 - packets[0].0;
    assert!(
        span >= Duration::from_millis(2600) && span <= Duration::from_millis(3600),
        "150 packets over {span:?}"
    );
    let max_gap = packets.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
    assert!(max_gap < Duration::from_millis(150), "max gap {max_gap:?}");
    let (_, finished) = wait_for(&mut media, Duration::from_millis(500), |n| {
        *n == MediaNotice::PlaybackFinished
    })
    .await;
    assert!(finished.is_some());
    media.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4733_events_give_one_digit_per_key() {
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(41020, 41029, 1), store);
    let mut peer = Peer::new().await;
    let mut media = workers
        .open(CallKey(2), &session(peer.addr(), Some(TE)))
        .unwrap();
    peer.connect(&media);
    peer.send_audio(&[0xFF; FRAME]).await;
    peer.press(Digit::D1, 0).await;
    peer.press(Digit::D2, 3).await; // end packets repeated beyond the usual three
    peer.press(Digit::D1, 2).await; // the same key again is a new press
    let notices = notices_for(&mut media, Duration::from_millis(400)).await;
    assert_eq!(
        digits(&notices),
        vec![
            (Digit::D1, DtmfSource::Rfc4733),
            (Digit::D2, DtmfSource::Rfc4733),
            (Digit::D1, DtmfSource::Rfc4733),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inband_tones_are_detected_without_telephone_event() {
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(41040, 41049, 1), store);
    let mut peer = Peer::new().await;
    let mut media = workers
        .open(CallKey(3), &session(peer.addr(), None))
        .unwrap();
    peer.connect(&media);
    let mut pcm = vec![0i16; 1600];
    pcm.extend(dtmf_sequence(
        &[Digit::D1, Digit::D9],
        100,
        100,
        ToneLevel::default(),
    ));
    pcm.extend(vec![0i16; 1600]);
    let mut ulaw = Vec::new();
    Law::Ulaw.encode(&pcm, &mut ulaw);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for frame in ulaw.chunks(FRAME) {
        tick.tick().await;
        peer.send_audio(frame).await;
    }
    let notices = notices_for(&mut media, Duration::from_millis(300)).await;
    assert_eq!(
        digits(&notices),
        vec![
            (Digit::D1, DtmfSource::Inband),
            (Digit::D9, DtmfSource::Inband)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inband_detection_is_off_when_telephone_event_was_negotiated() {
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(41140, 41149, 1), store);
    let mut peer = Peer::new().await;
    let mut media = workers
        .open(CallKey(9), &session(peer.addr(), Some(TE)))
        .unwrap();
    peer.connect(&media);
    let pcm = dtmf_sequence(&[Digit::D4], 120, 60, ToneLevel::default());
    let mut ulaw = Vec::new();
    Law::Ulaw.encode(&pcm, &mut ulaw);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for frame in ulaw.chunks(FRAME) {
        tick.tick().await;
        peer.send_audio(frame).await;
    }
    let notices = notices_for(&mut media, Duration::from_millis(200)).await;
    assert!(digits(&notices).is_empty(), "{notices:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_digits_join_the_same_stream() {
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(41060, 41069, 1), store);
    let peer = Peer::new().await;
    let mut media = workers
        .open(CallKey(4), &session(peer.addr(), Some(TE)))
        .unwrap();
    media
        .info_digit("application/dtmf-relay", b"Signal=7\r\nDuration=160\r\n")
        .unwrap();
    let (_, got) = wait_for(&mut media, Duration::from_secs(1), |n| {
        matches!(n, MediaNotice::Digit { .. })
    })
    .await;
    assert_eq!(
        got,
        Some(MediaNotice::Digit {
            digit: Digit::D7,
            source: DtmfSource::Info
        })
    );
    assert!(matches!(
        media.info_digit("text/plain", b"hello"),
        Err(MediaError::Dtmf(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digit_barges_into_an_interruptible_prompt() {
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(41080, 41089, 1), store.clone());
    let mut peer = Peer::new().await;
    let mut media = workers
        .open(CallKey(5), &session(peer.addr(), Some(TE)))
        .unwrap();
    peer.connect(&media);
    media
        .play(
            vec![
                PlayItem::Prompt("hello".into()),
                PlayItem::Prompt("short".into()),
            ],
            true,
        )
        .unwrap();
    let before = peer.receive(10, Duration::from_secs(2)).await;
    assert_eq!(before.len(), 10);
    let started = Instant::now();
    peer.press(Digit::D3, 0).await;
    let (seen, finished) = wait_for(&mut media, Duration::from_secs(1), |n| {
        *n == MediaNotice::PlaybackFinished
    })
    .await;
    assert!(finished.is_some(), "barge-in ends the playlist: {seen:?}");
    assert!(started.elapsed() < Duration::from_millis(800));
    assert_eq!(digits(&seen), vec![(Digit::D3, DtmfSource::Rfc4733)]);
    // Drain what was in flight, then only silence arrives.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let _ = peer.receive(100, Duration::from_millis(1)).await;
    let after = peer.receive(10, Duration::from_secs(1)).await;
    assert_eq!(after.len(), 10);
    for (_, b) in &after {
        assert!(
            RtpPacket::parse(b)
                .unwrap()
                .payload()
                .iter()
                .all(|&x| x == 0xFF)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uninterruptible_prompt_plays_on_through_a_digit() {
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(41160, 41169, 1), store);
    let mut peer = Peer::new().await;
    let mut media = workers
        .open(CallKey(10), &session(peer.addr(), Some(TE)))
        .unwrap();
    peer.connect(&media);
    media
        .play(vec![PlayItem::Prompt("short".into())], false)
        .unwrap();
    peer.press(Digit::D8, 0).await;
    let (seen, finished) = wait_for(&mut media, Duration::from_secs(2), |n| {
        *n == MediaNotice::PlaybackFinished
    })
    .await;
    assert_eq!(digits(&seen), vec![(Digit::D8, DtmfSource::Rfc4733)]);
    assert!(finished.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_timeout_fires_when_the_peer_stops_sending() {
    let (_dir, store) = prompts();
    let mut cfg = config(41100, 41109, 1);
    cfg.no_rtp_timeout = Duration::from_millis(300);
    let workers = MediaWorkers::start(cfg, store);
    let mut peer = Peer::new().await;
    let mut media = workers
        .open(CallKey(6), &session(peer.addr(), Some(TE)))
        .unwrap();
    peer.connect(&media);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..20 {
        tick.tick().await;
        peer.send_audio(&[0xFF; FRAME]).await;
    }
    let stopped = Instant::now();
    let (seen, got) = wait_for(&mut media, Duration::from_secs(2), |n| {
        *n == MediaNotice::MediaTimeout
    })
    .await;
    assert!(got.is_some(), "no media timeout: {seen:?}");
    let after = stopped.elapsed();
    assert!(
        after >= Duration::from_millis(250) && after <= Duration::from_millis(900),
        "timeout after {after:?}"
    );
    // RTP again: the call hears it resumed.
    peer.send_audio(&[0xFF; FRAME]).await;
    let (_, resumed) = wait_for(&mut media, Duration::from_secs(1), |n| {
        *n == MediaNotice::MediaResumed
    })
    .await;
    assert!(resumed.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_stops_sending_and_resume_starts_again() {
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(41180, 41189, 1), store);
    let peer = Peer::new().await;
    let s = session(peer.addr(), Some(TE));
    let media = workers.open(CallKey(11), &s).unwrap();
    assert_eq!(peer.receive(5, Duration::from_secs(1)).await.len(), 5);
    media
        .update_session(Session {
            local_direction: Direction::Inactive,
            ..s.clone()
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let _ = peer.receive(100, Duration::from_millis(1)).await;
    assert!(peer.receive(1, Duration::from_millis(200)).await.is_empty());
    // Resume towards a new address.
    let moved = Peer::new().await;
    media
        .update_session(Session {
            remote: Some(moved.addr()),
            ..s
        })
        .unwrap();
    let got = moved.receive(5, Duration::from_secs(1)).await;
    assert_eq!(got.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_calls_on_two_workers_each_get_paced_audio() {
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(42000, 42599, 2), store.clone());
    let mut calls = Vec::new();
    for i in 0..200u64 {
        let peer = Peer::new().await;
        let media = workers
            .open(CallKey(100 + i), &session(peer.addr(), Some(TE)))
            .unwrap();
        media
            .play(vec![PlayItem::Prompt("short".into())], true)
            .unwrap();
        calls.push((peer, media));
    }
    assert_eq!(workers.loads(), vec![100, 100]);
    let prompt = store.get("short").unwrap().audio(Law::Ulaw).clone();
    let mut tasks = Vec::new();
    for (peer, media) in calls {
        let prompt = prompt.clone();
        tasks.push(tokio::spawn(async move {
            let got = peer.receive(50, Duration::from_secs(5)).await;
            assert_eq!(got.len(), 50);
            let p: Vec<_> = got
                .iter()
                .map(|(_, b)| RtpPacket::parse(b).unwrap())
                .collect();
            for (i, pk) in p.iter().enumerate() {
                assert_eq!(
                    pk.sequence_number(),
                    p[0].sequence_number().wrapping_add(i as u16)
                );
                assert_eq!(
                    pk.timestamp(),
                    p[0].timestamp().wrapping_add(160 * i as u32)
                );
            }
            // The prompt is in there, whole and in order.
            let start = p
                .iter()
                .position(|pk| pk.payload() == &prompt[..FRAME])
                .unwrap();
            for (k, frame) in prompt.chunks(FRAME).enumerate() {
                assert_eq!(p[start + k].payload(), frame);
            }
            let span = got[49].0 - got[0].0;
            assert!(
                span >= Duration::from_millis(700) && span <= Duration::from_millis(1600),
                "50 packets over {span:?}"
            );
            drop(media);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Every call closed: their ports are back in the pool.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(workers.ports_in_use(), 0);
    assert_eq!(workers.loads(), vec![0, 0]);
    let stats = workers.stats();
    assert!(
        stats.iter().all(|s| s.packets_sent >= 100 * 50),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_ports_are_an_error() {
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(41120, 41123, 1), store);
    let peer = Peer::new().await;
    let s = session(peer.addr(), Some(TE));
    let a = workers.open(CallKey(7), &s).unwrap();
    let b = workers.reserve().unwrap();
    assert_ne!(a.local_port(), b.port());
    assert!(matches!(
        workers.reserve(),
        Err(MediaError::PortsExhausted(_))
    ));
    // A closed call's ports rest in quarantine: still exhausted right after.
    drop(a);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(
        workers.open(CallKey(8), &s),
        Err(MediaError::PortsExhausted(_))
    ));
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_writes_the_callers_audio() {
    let (dir, store) = prompts();
    let workers = MediaWorkers::start(config(41200, 41209, 1), store);
    let mut peer = Peer::new().await;
    let mut media = workers
        .open(CallKey(12), &session(peer.addr(), Some(TE)))
        .unwrap();
    peer.connect(&media);
    let path = dir.path().join("rec.wav");
    media
        .start_recording(&path, guichet::media::recorder::RecorderConfig::default())
        .unwrap();
    let tone: Vec<i16> = (0..8000)
        .map(|i| (6000.0 * (f64::from(i) * 0.3).sin()) as i16)
        .collect();
    let mut ulaw = Vec::new();
    Law::Ulaw.encode(&tone[..4000], &mut ulaw);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for frame in ulaw.chunks(FRAME) {
        tick.tick().await;
        peer.send_audio(frame).await;
    }
    media.stop_recording().unwrap();
    let (_, got) = wait_for(&mut media, Duration::from_secs(1), |n| {
        matches!(n, MediaNotice::RecordingStopped(_))
    })
    .await;
    let Some(MediaNotice::RecordingStopped(guichet::engine::media::RecordingOutcome::Done(rec))) =
        got
    else {
        panic!("no recording: {got:?}");
    };
    assert!(rec.heard_speech);
    let reader = hound::WavReader::open(&path).unwrap();
    assert_eq!(reader.spec().sample_rate, 8000);
    assert!(reader.len() >= 3000, "{} samples", reader.len());
}

/// The recording is played out through a jitter buffer: packets that arrive swapped in
/// pairs are written in sequence order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_puts_reordered_packets_back_in_order() {
    let (dir, store) = prompts();
    let workers = MediaWorkers::start(config(41210, 41219, 1), store);
    let mut peer = Peer::new().await;
    let mut media = workers
        .open(CallKey(15), &session(peer.addr(), Some(TE)))
        .unwrap();
    peer.connect(&media);
    let path = dir.path().join("reordered.wav");
    media
        .start_recording(&path, guichet::media::recorder::RecorderConfig::default())
        .unwrap();
    // 40 frames of a tone whose level rises frame by frame.
    const FRAMES: usize = 40;
    let level = |k: usize| 1500.0 + 150.0 * k as f64;
    let frames: Vec<Vec<u8>> = (0..FRAMES)
        .map(|k| {
            let pcm: Vec<i16> = (0..FRAME)
                .map(|i| (level(k) * (i as f64 * 0.3).sin()) as i16)
                .collect();
            let mut ulaw = Vec::new();
            Law::Ulaw.encode(&pcm, &mut ulaw);
            ulaw
        })
        .collect();
    // The first four in order (symmetric RTP latches on packets in sequence), then the
    // rest in pairs swapped: 5, 4, 7, 6, ...
    let mut tick = tokio::time::interval(Duration::from_millis(40));
    for pair in (0..FRAMES).step_by(2) {
        tick.tick().await;
        let order = if pair < 4 {
            [pair, pair + 1]
        } else {
            [pair + 1, pair]
        };
        for k in order {
            let seq = 1000 + k as u16;
            let ts = 160_000 + 160 * k as u32;
            let p = rtp(0, false, seq, ts, 0xABCD, &frames[k]);
            peer.sock.send_to(&p, peer.dest).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    media.stop_recording().unwrap();
    let (_, got) = wait_for(&mut media, Duration::from_secs(1), |n| {
        matches!(n, MediaNotice::RecordingStopped(_))
    })
    .await;
    assert!(
        matches!(
            got,
            Some(MediaNotice::RecordingStopped(
                guichet::engine::media::RecordingOutcome::Done(_)
            ))
        ),
        "{got:?}"
    );
    let samples: Vec<i16> = hound::WavReader::open(&path)
        .unwrap()
        .into_samples::<i16>()
        .map(Result::unwrap)
        .collect();
    // Peak level of each 20 ms frame of the recording (frames stay aligned: nothing is
    // trimmed before the first loud frame).
    let peaks: Vec<i32> = samples
        .chunks(FRAME)
        .map(|c| c.iter().map(|&v| i32::from(v).abs()).max().unwrap_or(0))
        .filter(|&p| p > 1000)
        .collect();
    assert!(
        peaks.len() >= FRAMES - 4,
        "{} loud frames of {} samples: {peaks:?}",
        peaks.len(),
        samples.len()
    );
    for w in peaks.windows(2) {
        assert!(
            w[1] + 60 >= w[0],
            "levels must rise frame by frame (in sequence order): {peaks:?}"
        );
    }
}

/// CPU cost of N paced calls for 10 s (release build):
/// `cargo test --release --test media_rtp -- --ignored bench_ --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_paced_calls_cpu() {
    for n in [200u64, 1000] {
        bench(n, false, 43000).await;
    }
}

/// The same with the peer sending 20 ms PCMU frames to every call (receive path too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_paced_calls_with_inbound_cpu() {
    for n in [200u64, 1000] {
        bench(n, true, 46000).await;
    }
}

async fn bench(n: u64, inbound: bool, first_port: u16) {
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(first_port, first_port + 2999, 2), store);
    let sink = Arc::new(UdpSocket::bind((LOCALHOST, 0)).await.unwrap());
    let sink_addr = sink.local_addr().unwrap();
    let mut calls = Vec::new();
    for i in 0..n {
        let m = workers
            .open(CallKey(i), &session(sink_addr, Some(TE)))
            .unwrap();
        m.play(vec![PlayItem::MusicOnHold], true).unwrap();
        calls.push(m);
    }
    let counter = {
        let sink = sink.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let mut count = 0u64;
            while let Ok(Ok(_)) = timeout(Duration::from_secs(1), sink.recv_from(&mut buf)).await {
                count += 1;
            }
            count
        })
    };
    let ports: Vec<SocketAddr> = calls
        .iter()
        .map(|m| SocketAddr::new(LOCALHOST, m.local_port()))
        .collect();
    let sender = inbound.then(|| {
        let sink = sink.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let end = Instant::now() + Duration::from_secs(10);
            let mut seq = 0u16;
            while Instant::now() < end {
                tick.tick().await;
                let p = rtp(0, false, seq, u32::from(seq) * 160, 0x1234, &[0xFF; FRAME]);
                for port in &ports {
                    let _ = sink.try_send_to(&p, *port);
                }
                seq = seq.wrapping_add(1);
            }
        })
    });
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = cpu_time() - cpu0;
    let wall = t0.elapsed();
    let stats = workers.stats();
    drop(calls);
    if let Some(s) = sender {
        s.await.unwrap();
    }
    let received = counter.await.unwrap();
    println!(
        "bench: {n} calls{}, {wall:?} wall, {cpu:?} CPU ({:.1} % of one core, incl. the test \
         peer), sent {} (send errors {}, skipped slots {}), calls received {}, sink received \
         {received}",
        if inbound { " + inbound RTP" } else { "" },
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        stats.iter().map(|s| s.packets_sent).sum::<u64>(),
        stats.iter().map(|s| s.send_errors).sum::<u64>(),
        stats.iter().map(|s| s.slots_skipped).sum::<u64>(),
        stats.iter().map(|s| s.packets_received).sum::<u64>(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// User + system CPU time of this process (Linux `/proc/self/stat`, 100 ticks/s).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|x| x.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// A tracing writer that keeps what is written.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Single-threaded runtime: the thread-local subscriber sees the worker's events.
#[tokio::test]
async fn each_digit_is_logged_as_a_dtmf_event() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(41220, 41229, 1), store);
    let mut peer = Peer::new().await;
    let mut media = workers
        .open(CallKey(13), &session(peer.addr(), Some(TE)))
        .unwrap();
    peer.connect(&media);
    media.info_digit("application/dtmf", b"5").unwrap();
    peer.press(Digit::Hash, 1).await;
    let notices = notices_for(&mut media, Duration::from_millis(200)).await;
    assert_eq!(digits(&notices).len(), 2, "{notices:?}");
    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let logged: Vec<(String, String, String)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "dtmf")
        .map(|v| {
            let f = &v["fields"];
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
            (s("call"), s("digit"), s("source"))
        })
        .collect();
    assert_eq!(
        logged,
        vec![
            ("c13".into(), "5".into(), "info".into()),
            ("c13".into(), "#".into(), "rfc4733".into()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtcp_reports_quality_bye_and_close() {
    let (_dir, store) = prompts();
    let mut cfg = config(41240, 41249, 1);
    cfg.rtcp_interval = Duration::from_millis(200);
    let workers = MediaWorkers::start(cfg, store);
    // The peer's RTP/RTCP pair on fixed adjacent ports (RTCP = RTP + 1).
    let peer = UdpSocket::bind((LOCALHOST, 41300)).await.unwrap();
    let peer_rtcp = UdpSocket::bind((LOCALHOST, 41301)).await.unwrap();
    let mut media = workers
        .open(CallKey(14), &session(peer.local_addr().unwrap(), Some(TE)))
        .unwrap();
    let our_rtcp = SocketAddr::new(LOCALHOST, media.local_port() + 1);
    let mut buf = [0u8; 2048];
    let (n, _) = timeout(Duration::from_secs(1), peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let our_ssrc = RtpPacket::parse(&buf[..n]).unwrap().ssrc();
    // Our sender report comes to the RTCP port.
    let (n, from) = timeout(Duration::from_secs(2), peer_rtcp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, our_rtcp);
    assert!(
        n >= 28 && buf[1] == 200,
        "a sender report first: {:?}",
        &buf[..n]
    );

    // A receiver report about our stream: 25 % lost.
    let mut rr = vec![0x81, 201, 0, 7];
    rr.extend_from_slice(&0x5555_u32.to_be_bytes());
    rr.extend_from_slice(&our_ssrc.to_be_bytes());
    rr.extend_from_slice(&[64, 0, 0, 3]);
    rr.extend_from_slice(&[0u8; 16]);
    peer_rtcp.send_to(&rr, our_rtcp).await.unwrap();
    let (_, got) = wait_for(&mut media, Duration::from_secs(1), |n| {
        matches!(n, MediaNotice::Quality(_))
    })
    .await;
    let Some(MediaNotice::Quality(q)) = got else {
        panic!("no quality notice");
    };
    assert!((q.fraction_lost - 0.25).abs() < 0.01, "{q:?}");

    // The peer says goodbye.
    let mut bye = vec![0x80, 201, 0, 1];
    bye.extend_from_slice(&0x5555_u32.to_be_bytes());
    bye.extend_from_slice(&[0x81, 203, 0, 1]);
    bye.extend_from_slice(&0x5555_u32.to_be_bytes());
    peer_rtcp.send_to(&bye, our_rtcp).await.unwrap();
    let (_, got) = wait_for(&mut media, Duration::from_secs(1), |n| {
        *n == MediaNotice::PeerBye
    })
    .await;
    assert!(got.is_some());

    // Our close sends a BYE.
    media.close();
    let mut saw_bye = false;
    while let Ok(Ok((n, _))) =
        timeout(Duration::from_millis(500), peer_rtcp.recv_from(&mut buf)).await
    {
        if buf[..n]
            .windows(2)
            .any(|w| w[1] == 203 && w[0] & 0xC0 == 0x80)
        {
            saw_bye = true;
            break;
        }
    }
    assert!(saw_bye);
    // The last notice is the call's final RTP figures, then the stream ends.
    let mut last = None;
    while let Some(n) = media.next_notice().await {
        last = Some(n);
    }
    let Some(MediaNotice::Closed(stats)) = last else {
        panic!("closed: the last notice is Closed, got {last:?}");
    };
    assert!(stats.packets_sent > 0, "{stats:?}");
    assert_eq!(
        stats.packets_received, 0,
        "the peer sent RTCP only: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn music_on_hold_loops_until_stopped() {
    let (_dir, store) = prompts();
    let workers = MediaWorkers::start(config(41260, 41269, 1), store.clone());
    let peer = Peer::new().await;
    let mut media = workers
        .open(CallKey(15), &session(peer.addr(), Some(TE)))
        .unwrap();
    assert!(matches!(
        media.play(vec![PlayItem::Prompt("nope".into())], true),
        Err(MediaError::UnknownPrompt(id)) if id == "nope"
    ));
    media.play(vec![PlayItem::MusicOnHold], true).unwrap();
    // 0.4 s track = 20 frames: 50 packets hold the track more than twice.
    let got = peer.receive(50, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 50);
    let music = store.get("moh/music").unwrap().audio(Law::Ulaw).clone();
    let payloads: Vec<Vec<u8>> = got
        .iter()
        .map(|(_, b)| RtpPacket::parse(b).unwrap().payload().to_vec())
        .collect();
    let start = payloads
        .iter()
        .position(|p| p[..] == music[..FRAME])
        .unwrap();
    assert!(start + 40 <= payloads.len(), "music starts late: {start}");
    for k in 0..40 {
        let frame = &music[(k % 20) * FRAME..(k % 20 + 1) * FRAME];
        assert_eq!(payloads[start + k], frame, "music frame {k}");
    }
    media.stop_playback().unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let _ = peer.receive(100, Duration::from_millis(1)).await;
    let after = peer.receive(5, Duration::from_secs(1)).await;
    assert!(after.iter().all(|(_, b)| {
        RtpPacket::parse(b)
            .unwrap()
            .payload()
            .iter()
            .all(|&x| x == 0xFF)
    }));
    let notices = notices_for(&mut media, Duration::from_millis(100)).await;
    assert!(
        !notices.contains(&MediaNotice::PlaybackFinished),
        "{notices:?}"
    );
}
