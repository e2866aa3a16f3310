//! The call side of the UAS core: in-dialog requests (BYE, re-INVITE, UPDATE, INFO,
//! OPTIONS), the engine's commands (Ringing, Answer, Reject, Hangup), SDP offer/answer in
//! the dialog, and the per-call timers (2xx retransmission, ACK timeout, call duration).
//!
//! Input/output as for the parent module: it mutates the endpoint and pushes onto its
//! output queue.

use super::*;

impl Endpoint {
    pub(super) fn on_in_dialog(
        &mut self,
        now: Instant,
        from: Peer,
        req: Request,
        key: TsxKey,
        call: CallKey,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let tag = c.local_tag();
        let cseq = headers::cseq(&req.headers).map(|(n, _)| n).unwrap_or(0);
        if let Err(e) = c.dialog.check_remote_cseq(cseq) {
            tracing::debug!(error = %e, %call, "out-of-order in-dialog request");
            if req.method == Method::Invite {
                let bytes = self.response_bytes(&req, from, 500, Some(&tag), vec![], None);
                self.refuse_invite(now, reply_to(&req, from), key, bytes, 500);
            } else {
                self.respond_non_invite(
                    now,
                    from,
                    &req,
                    key,
                    Some(call),
                    500,
                    Some(&tag),
                    vec![],
                    None,
                );
            }
            return;
        }
        match req.method {
            Method::Bye => {
                self.respond_non_invite(
                    now,
                    from,
                    &req,
                    key,
                    Some(call),
                    200,
                    Some(&tag),
                    vec![],
                    None,
                );
                if let Some(c) = self.calls.get(&call)
                    && c.state == CallState::Early
                {
                    let bytes = self.response_bytes(&c.invite, from, 487, Some(&tag), vec![], None);
                    let ik = c.invite_key.clone();
                    self.respond_invite(now, &ik, 487, bytes);
                }
                self.end_call(call, EndReason::RemoteBye);
            }
            Method::Invite => self.on_reinvite(now, from, req, key, call),
            Method::Update => {
                c.dialog.refresh_target(&req);
                if req.body.is_empty() {
                    self.respond_non_invite(
                        now,
                        from,
                        &req,
                        key,
                        Some(call),
                        200,
                        Some(&tag),
                        vec![self.contact(from.transport)],
                        None,
                    );
                    return;
                }
                match self.answer_offer(call, &req.body) {
                    Ok(sdp) => {
                        let extra = vec![self.contact(from.transport)];
                        self.respond_non_invite(
                            now,
                            from,
                            &req,
                            key,
                            Some(call),
                            200,
                            Some(&tag),
                            extra,
                            Some(("application/sdp", sdp)),
                        );
                    }
                    Err(code) => {
                        let extra = self.warning(code);
                        self.respond_non_invite(
                            now,
                            from,
                            &req,
                            key,
                            Some(call),
                            code.status(),
                            Some(&tag),
                            extra,
                            None,
                        );
                    }
                }
            }
            Method::Info => {
                let content_type = headers::first(&req.headers, "Content-Type")
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                let body = Bytes::from(req.body.clone());
                self.respond_non_invite(
                    now,
                    from,
                    &req,
                    key,
                    Some(call),
                    200,
                    Some(&tag),
                    vec![],
                    None,
                );
                self.out.push_back(Output::Event(Event::Info {
                    call,
                    content_type,
                    body,
                }));
            }
            Method::Options => {
                let extra = self.options_headers();
                self.respond_non_invite(
                    now,
                    from,
                    &req,
                    key,
                    Some(call),
                    200,
                    Some(&tag),
                    extra,
                    None,
                );
            }
            _ => {
                let extra = vec![hdr("Allow", ALLOW)];
                self.respond_non_invite(
                    now,
                    from,
                    &req,
                    key,
                    Some(call),
                    405,
                    Some(&tag),
                    extra,
                    None,
                );
            }
        }
    }

    /// A re-INVITE: answered at once by the UAS core (hold, resume, session refresh).
    fn on_reinvite(&mut self, now: Instant, from: Peer, req: Request, key: TsxKey, call: CallKey) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let tag = c.local_tag();
        let peer = reply_to(&req, from);
        if self.servers.len() >= MAX_SERVER_TRANSACTIONS {
            let bytes = self.response_bytes(&req, from, 500, Some(&tag), vec![], None);
            self.refuse_invite(now, peer, key, bytes, 500);
            return;
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != CallState::Confirmed || c.pending_2xx.is_some() {
            // An offer is already in progress (RFC 3261 14.2): 491 Request Pending.
            let bytes = self.response_bytes(&req, from, 491, Some(&tag), vec![], None);
            self.refuse_invite(now, peer, key, bytes, 491);
            return;
        }
        c.dialog.refresh_target(&req);
        let trying = self.response_bytes(&req, from, 100, None, vec![], None);
        let tsx = ServerInvite::new(now, peer, trying, self.config.timers);
        self.servers.insert(
            key.clone(),
            ServerEntry {
                tsx: ServerTsx::Invite(tsx),
                call: Some(call),
            },
        );
        self.pump_server(&key);
        let cseq = headers::cseq(&req.headers).map(|(n, _)| n).unwrap_or(0);
        let offered = if req.body.is_empty() {
            // No offer: ours goes in the 2xx, the answer in the ACK.
            self.reoffer(call).map(|sdp| (sdp, true))
        } else {
            self.answer_offer(call, &req.body).map(|sdp| (sdp, false))
        };
        let (body, answer_in_ack) = {
            match offered {
                Ok(offered) => offered,
                Err(code) => {
                    let extra = self.warning(code);
                    let bytes =
                        self.response_bytes(&req, from, code.status(), Some(&tag), extra, None);
                    self.respond_invite(now, &key, code.status(), bytes);
                    return;
                }
            }
        };
        let mut extra = vec![self.contact(from.transport), hdr("Allow", ALLOW)];
        extra.extend(record_route_headers(&req));
        let bytes = self.response_bytes(
            &req,
            from,
            200,
            Some(&tag),
            extra,
            Some(("application/sdp", body)),
        );
        self.respond_invite(now, &key, 200, bytes.clone());
        let t1 = self.config.timers.t1;
        if let Some(c) = self.calls.get_mut(&call) {
            c.pending_2xx = Some(Pending2xx {
                cseq,
                bytes,
                to: peer,
                timer: Retransmit {
                    at: now + t1,
                    interval: t1,
                },
                give_up: now + t1 * 64,
                answer_in_ack,
            });
        }
        self.refresh_call_timer(call);
    }

    /// Our offer for a re-INVITE without SDP; the `o=` version moves only when it differs
    /// from the last SDP we sent.
    fn reoffer(&mut self, call: CallKey) -> Result<Vec<u8>, Refusal> {
        let Some(c) = self.calls.get_mut(&call) else {
            return Err(Refusal::NotReady);
        };
        let Some(local) = c.local.as_mut() else {
            return Err(Refusal::NotReady);
        };
        let mut offer = sdp::offer(local);
        if c.local_sdp.as_deref() != Some(offer.as_slice()) {
            local.version = local.version.saturating_add(1);
            offer = sdp::offer(local);
        }
        c.local_sdp = Some(offer.clone());
        Ok(offer)
    }

    /// Answer an in-dialog offer; the `o=` version moves only when our SDP changes (so a
    /// session refresh gets the same answer). Emits MediaUpdated when the session changed.
    fn answer_offer(&mut self, call: CallKey, offer: &[u8]) -> Result<Vec<u8>, Refusal> {
        let Some(c) = self.calls.get_mut(&call) else {
            return Err(Refusal::NotReady);
        };
        let Some(local) = c.local.as_mut() else {
            return Err(Refusal::NotReady);
        };
        let mut answer = sdp::answer(offer, local).map_err(Refusal::from)?;
        if c.local_sdp.as_deref() != Some(answer.sdp.as_slice()) {
            local.version = local.version.saturating_add(1);
            answer = sdp::answer(offer, local).map_err(Refusal::from)?;
        }
        c.local_sdp = Some(answer.sdp.clone());
        if c.session.as_ref() != Some(&answer.session) {
            c.session = Some(answer.session.clone());
            self.out.push_back(Output::Event(Event::MediaUpdated {
                call,
                session: answer.session,
            }));
        }
        Ok(answer.sdp)
    }

    fn warning(&self, refusal: Refusal) -> Vec<Header> {
        let host = fmt_addr(self.config.local);
        match refusal {
            Refusal::NoCommonCodec => vec![hdr(
                "Warning",
                format!("305 {host} \"Incompatible media format\""),
            )],
            Refusal::NoMedia => vec![hdr(
                "Warning",
                format!("304 {host} \"Media type not available\""),
            )],
            Refusal::NotReady => vec![hdr("Retry-After", "1")],
        }
    }

    // -------------------------------------------------------------------------------
    // Commands

    pub(in crate::sip) fn on_command(&mut self, now: Instant, call: CallKey, command: CallCommand) {
        let Some(c) = self.calls.get(&call) else {
            tracing::debug!(%call, ?command, "command for a call that is over");
            return;
        };
        let state = c.state;
        match (command, state) {
            (CallCommand::Ringing, CallState::Early) => {
                let mut extra = vec![self.contact(c.source.transport)];
                extra.extend(record_route_headers(&c.invite));
                let source = c.dialog_peer();
                let bytes =
                    self.response_bytes(&c.invite, source, 180, Some(&c.local_tag()), extra, None);
                let key = c.invite_key.clone();
                self.respond_invite(now, &key, 180, bytes);
            }
            (CallCommand::Answer { local }, CallState::Early) => self.answer(now, call, local),
            (CallCommand::Reject { code }, CallState::Early) => {
                let code = if (300..=699).contains(&code) {
                    code
                } else {
                    603
                };
                self.final_non_2xx(now, call, code, vec![]);
                self.end_call(call, EndReason::Rejected(code));
            }
            (CallCommand::Hangup, CallState::Early) => {
                self.final_non_2xx(now, call, 480, vec![]);
                self.end_call(call, EndReason::Rejected(480));
            }
            (CallCommand::Hangup, CallState::Answered) => {
                // 15: no BYE before the ACK (or its timeout).
                if let Some(c) = self.calls.get_mut(&call) {
                    c.hangup_on_ack = true;
                }
            }
            (CallCommand::Hangup, CallState::Confirmed) => {
                self.send_bye(now, call, EndReason::LocalBye)
            }
            (command, state) => {
                tracing::debug!(%call, ?command, ?state, "command ignored in this call state")
            }
        }
    }

    fn final_non_2xx(&mut self, now: Instant, call: CallKey, code: u16, extra: Vec<Header>) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let bytes = self.response_bytes(
            &c.invite,
            c.dialog_peer(),
            code,
            Some(&c.local_tag()),
            extra,
            None,
        );
        let key = c.invite_key.clone();
        self.respond_invite(now, &key, code, bytes);
    }

    fn answer(&mut self, now: Instant, call: CallKey, local: LocalMedia) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let (body, session, answer_in_ack) = if c.invite.body.is_empty() {
            (sdp::offer(&local), None, true)
        } else {
            match sdp::answer(&c.invite.body, &local) {
                Ok(a) => (a.sdp, Some(a.session), false),
                Err(e) => {
                    let refusal = Refusal::from(e);
                    let extra = self.warning(refusal);
                    self.final_non_2xx(now, call, 488, extra);
                    self.end_call(call, EndReason::NoCommonCodec);
                    return;
                }
            }
        };
        let mut extra = vec![
            self.contact(c.source.transport),
            hdr("Allow", ALLOW),
            hdr("Supported", ""),
        ];
        extra.extend(record_route_headers(&c.invite));
        let source = c.dialog_peer();
        let bytes = self.response_bytes(
            &c.invite,
            source,
            200,
            Some(&c.local_tag()),
            extra,
            Some(("application/sdp", body.clone())),
        );
        let key = c.invite_key.clone();
        let cseq = headers::cseq(&c.invite.headers)
            .map(|(n, _)| n)
            .unwrap_or(0);
        let to = reply_to(&c.invite, source);
        self.respond_invite(now, &key, 200, bytes.clone());
        let t1 = self.config.timers.t1;
        if let Some(c) = self.calls.get_mut(&call) {
            // Keep the version we answered with; later changes bump it.
            c.local = Some(local);
            c.local_sdp = Some(body);
            c.session = session.clone();
            c.state = CallState::Answered;
            c.ends_at = None;
            c.pending_2xx = Some(Pending2xx {
                cseq,
                bytes,
                to,
                timer: Retransmit {
                    at: now + t1,
                    interval: t1,
                },
                give_up: now + t1 * 64,
                answer_in_ack,
            });
        }
        self.refresh_call_timer(call);
        self.out
            .push_back(Output::Event(Event::Answered { call, session }));
    }

    /// Send BYE in the call's dialog through a client transaction and end the call.
    pub(super) fn send_bye(&mut self, now: Instant, call: CallKey, reason: EndReason) {
        let branch = self.rng.branch();
        let local = self.config.local;
        let ua = self.config.user_agent.clone();
        let timers = self.config.timers;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let bye = c.dialog.request("BYE", &branch, local, &ua);
        let tsx = ClientNonInvite::new(now, bye.to, bye.bytes, timers);
        let key = ClientKey {
            branch,
            method: "BYE".to_owned(),
        };
        self.clients.insert(
            key.clone(),
            ClientEntry {
                tsx,
                call: Some(call),
            },
        );
        self.pump_client(&key);
        self.end_call(call, reason);
    }

    /// The call is over for the engine: forget its dialog (transactions finish on their
    /// own timers).
    pub(super) fn end_call(&mut self, call: CallKey, reason: EndReason) {
        if let Some(c) = self.calls.remove(&call) {
            self.dialogs.remove(c.dialog.id());
            self.merge_index.remove(&c.merge_key);
            self.call_timers.set(&call, None);
            self.out
                .push_back(Output::Event(Event::Ended { call, reason }));
        }
    }

    /// Record `call`'s current earliest deadline (none once it is gone).
    pub(super) fn refresh_call_timer(&mut self, call: CallKey) {
        let at = self.calls.get(&call).and_then(Call::poll_timeout);
        self.call_timers.set(&call, at);
    }

    /// A call deadline came (`on_timeout`): act on what is due, then record the next one.
    pub(super) fn call_timeout(&mut self, now: Instant, call: CallKey) {
        self.call_timeout_inner(now, call);
        self.refresh_call_timer(call);
    }

    fn call_timeout_inner(&mut self, now: Instant, call: CallKey) {
        let t2 = self.config.timers.t2;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(p) = c.pending_2xx.as_mut() {
            if now >= p.give_up {
                // 13.3.1.4: no ACK in 64*T1: the dialog ends with a BYE.
                c.pending_2xx = None;
                self.send_bye(now, call, EndReason::AckTimeout);
                return;
            }
            if now >= p.timer.at {
                let interval = (p.timer.interval * 2).min(t2);
                p.timer = Retransmit {
                    at: now + interval,
                    interval,
                };
                self.out.push_back(Output::Transmit {
                    to: p.to,
                    bytes: p.bytes.clone(),
                });
            }
        }
        let due = c.ends_at.is_some_and(|d| now >= d);
        match c.state {
            CallState::Confirmed if due => self.send_bye(now, call, EndReason::MaxDuration),
            CallState::Early if due => {
                self.final_non_2xx(now, call, 480, vec![]);
                self.end_call(call, EndReason::Timeout);
            }
            _ => {}
        }
    }
}

impl Call {
    /// The source the INVITE came from, as a peer for stamping Via (its reply-to peer
    /// already carries the right address; `received`/`rport` are computed against it).
    fn dialog_peer(&self) -> Peer {
        self.source
    }
}

/// Why an offer was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    NoCommonCodec,
    NoMedia,
    /// Not answered yet (an offer in the early dialog).
    NotReady,
}

impl Refusal {
    fn status(self) -> u16 {
        match self {
            Refusal::NoCommonCodec | Refusal::NoMedia => 488,
            Refusal::NotReady => 500,
        }
    }
}

impl From<SdpError> for Refusal {
    fn from(e: SdpError) -> Self {
        match e {
            SdpError::NoCommonCodec(_) => Refusal::NoCommonCodec,
            SdpError::NoAudio | SdpError::Parse(_) | SdpError::HostnameAddress(_) => {
                Refusal::NoMedia
            }
        }
    }
}
