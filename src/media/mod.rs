//! Media: RTP/RTCP, G.711, prompt playback and pacing, DTMF, recording. Sans-IO.
//!
//! Nothing here owns a socket or reads the clock: sessions take packets and `now`, and
//! return packets to send plus their next deadline. The engine's media workers drive them.

pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod pacer;
pub mod playback;
pub mod ports;
pub mod prompts;
pub mod recorder;
pub mod render;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod wav;
