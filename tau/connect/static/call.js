// tau call page: standard WebRTC (RTCPeerConnection, getUserMedia) and /ws/signal, no build step.
//
// 1:1 calls ("p2p") are a mesh: the participant with the smaller id offers, the other answers.
// Group calls ("sfu") publish once to the media server (to: "sfu") and receive one connection
// per other participant from it (offers from "sfu" naming the publisher in "stream"). If the
// server reports no media server, the page falls back to the mesh.
// Sign-in: #access_token=... in the URL, a token kept in sessionStorage, ?guest=TOKEN from a
// guest link, or the sign-in form (OAuth2 password grant).
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const callId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const guest = new URLSearchParams(location.search).get("guest");
  const fragment = new URLSearchParams(location.hash.slice(1));
  let token = fragment.get("access_token") || sessionStorage.getItem("tau.access_token");
  if (fragment.get("access_token")) {
    sessionStorage.setItem("tau.access_token", token);
    history.replaceState(null, "", location.pathname + location.search);
  }

  const state = {
    me: null, mode: "p2p", sfu: false, iceServers: [], local: null, ws: null, left: false,
    participants: [], peers: new Map(), publish: null, subs: new Map(), muted: { audio: false, video: false },
    hand: false, errors: [],
  };

  const status = (text) => { $("status").textContent = text; };
  const send = (frame) => {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(frame));
  };

  // -- tiles ------------------------------------------------------------------------------------
  function tile(id, name) {
    let el = document.querySelector(`.tile[data-id="${CSS.escape(id)}"]`);
    if (!el) {
      el = document.createElement("div");
      el.className = "tile";
      el.dataset.id = id;
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      if (id === "local") video.muted = true;
      const label = document.createElement("span");
      label.className = "name";
      const badges = document.createElement("span");
      badges.className = "badges";
      el.append(video, label, badges);
      $("tiles").append(el);
    }
    if (name) el.querySelector(".name").textContent = name;
    return el;
  }
  function attach(id, stream) {
    const video = tile(id).querySelector("video");
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play().catch(() => {});
  }
  function dropTile(id) {
    const el = document.querySelector(`.tile[data-id="${CSS.escape(id)}"]`);
    if (el) el.remove();
  }
  function badges(p) {
    const marks = [p.audio_muted ? "🔇" : "", p.video_muted ? "📷✕" : "", p.hand_raised ? "✋" : ""];
    tile(p.id === state.me ? "local" : p.id).querySelector(".badges").textContent = marks.join(" ");
  }

  // -- peer connections -------------------------------------------------------------------------
  function newPc(onCandidate) {
    const pc = new RTCPeerConnection({ iceServers: state.iceServers });
    pc.onicecandidate = (e) => onCandidate(e.candidate ? e.candidate.toJSON() : null);
    return pc;
  }
  // addTrack, not addTransceiver: an answerer's tracks must attach to the m-lines of the offer
  // (JSEP 5.10 only pairs offered m-lines with transceivers that addTrack created)
  function addLocal(pc, offering) {
    const tracks = state.local ? state.local.getTracks() : [];
    for (const track of tracks) pc.addTrack(track, state.local);
    if (!offering) return;
    for (const kind of ["audio", "video"]) {
      if (!tracks.some((t) => t.kind === kind)) pc.addTransceiver(kind, { direction: "recvonly" });
    }
  }
  function gathered(pc, ms) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, ms);
    });
  }

  function meshPeer(pid, offering) {
    let peer = state.peers.get(pid);
    if (peer) return peer;
    const pc = newPc((candidate) => send({ type: "ice", call_id: callId, to: pid, candidate }));
    peer = { pc, pending: [], remote: false };
    state.peers.set(pid, peer);
    addLocal(pc, offering);
    pc.ontrack = (e) => attach(pid, e.streams[0] || new MediaStream([e.track]));
    return peer;
  }
  async function meshOffer(pid) {
    const { pc } = meshPeer(pid);
    await pc.setLocalDescription(await pc.createOffer());
    // the answer echoes nid: one meant for an earlier session of ours (before a reconnect) is dropped
    const peer = state.peers.get(pid);
    peer.nid = Math.random().toString(36).slice(2);
    send({ type: "offer", call_id: callId, to: pid, sdp: pc.localDescription.sdp, nid: peer.nid });
  }
  async function remoteDescription(peer, description) {
    await peer.pc.setRemoteDescription(description);
    peer.remote = true;
    for (const c of peer.pending.splice(0)) await peer.pc.addIceCandidate(c).catch(() => {});
  }
  function closePeer(pid) {
    const peer = state.peers.get(pid);
    if (peer) peer.pc.close();
    state.peers.delete(pid);
    dropTile(pid);
  }

  // SFU: one upstream, one downstream per other participant
  async function publish() {
    closeSfu();
    const pc = newPc((candidate) => send({ type: "ice", call_id: callId, to: "sfu", candidate }));
    state.publish = pc;
    addLocal(pc, true);
    for (const t of pc.getTransceivers()) if (t.sender.track) t.direction = "sendonly";
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 2000);
    send({ type: "offer", call_id: callId, to: "sfu", sdp: pc.localDescription.sdp });
  }
  async function sfuOffer(f) {
    const old = state.subs.get(f.stream);
    if (old) old.close();
    const pc = newPc((candidate) => send({ type: "ice", call_id: callId, to: "sfu", stream: f.stream, candidate }));
    state.subs.set(f.stream, pc);
    const stream = new MediaStream();
    pc.ontrack = (e) => { stream.addTrack(e.track); attach(f.stream, stream); };
    await pc.setRemoteDescription({ type: "offer", sdp: f.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    send({ type: "answer", call_id: callId, to: "sfu", stream: f.stream, sdp: pc.localDescription.sdp });
  }
  function closeSfu() {
    if (state.publish) state.publish.close();
    state.publish = null;
    for (const [id, pc] of state.subs) { pc.close(); dropTile(id); }
    state.subs.clear();
  }
  const useSfu = () => state.mode === "sfu" && state.sfu;

  // -- signaling --------------------------------------------------------------------------------
  function participants(list) {
    state.participants = list;
    const others = new Map(list.filter((p) => p.id !== state.me).map((p) => [p.id, p]));
    for (const pid of [...state.peers.keys()]) {
      const p = others.get(pid);
      if (!p || state.peers.get(pid).session !== p.session) closePeer(pid);
    }
    for (const id of [...state.subs.keys()]) if (!others.has(id)) { state.subs.get(id).close(); state.subs.delete(id); dropTile(id); }
    for (const p of list) {
      tile(p.id === state.me ? "local" : p.id, p.id === state.me ? `${p.name} (you)` : p.name);
      badges(p);
    }
    if (useSfu()) return;
    for (const [pid, p] of others) {
      if (!state.peers.has(pid) && state.me < pid) {
        meshPeer(pid, true).session = p.session;
        meshOffer(pid).catch((e) => status(`offer failed: ${e.message}`));
      }
    }
  }

  async function onFrame(f) {
    switch (f.type) {
      case "joined":
        state.me = f.participant_id;
        state.mode = f.mode;
        state.sfu = f.sfu === "ok";
        state.iceServers = f.ice_servers || [];
        $("title").textContent = f.title || "Call";
        status(f.status === "ringing" ? "ringing…" : "in call");
        participants(f.participants);
        if (useSfu()) await publish();
        break;
      case "participants":
        if (state.me) {
          status(f.participants.length > 1 ? "in call" : "waiting for others…");
          participants(f.participants);
        }
        break;
      case "offer":
        if (f.from === "sfu") { await sfuOffer(f); break; }
        {
          closePeer(f.from); // an offer always starts a new connection
          const peer = meshPeer(f.from);
          const p = state.participants.find((x) => x.id === f.from);
          if (p) peer.session = p.session;
          await remoteDescription(peer, { type: "offer", sdp: f.sdp });
          await peer.pc.setLocalDescription(await peer.pc.createAnswer());
          send({ type: "answer", call_id: callId, to: f.from, sdp: peer.pc.localDescription.sdp, nid: f.nid });
        }
        break;
      case "answer":
        if (f.from === "sfu") { if (state.publish) await state.publish.setRemoteDescription({ type: "answer", sdp: f.sdp }); }
        else if (state.peers.has(f.from) && state.peers.get(f.from).nid === f.nid) {
          await remoteDescription(state.peers.get(f.from), { type: "answer", sdp: f.sdp });
        }
        break;
      case "ice": {
        const peer = state.peers.get(f.from);
        if (!peer || !f.candidate) break;
        if (peer.remote) await peer.pc.addIceCandidate(f.candidate).catch(() => {});
        else peer.pending.push(f.candidate);
        break;
      }
      case "renegotiate":
        status("media server restarted, reconnecting media…");
        if (useSfu()) await publish();
        break;
      case "stream_ended": {
        const pc = state.subs.get(f.stream);
        if (pc) pc.close();
        state.subs.delete(f.stream);
        dropTile(f.stream);
        break;
      }
      case "state": {
        const p = state.participants.find((x) => x.id === f.participant);
        if (p) { Object.assign(p, f); badges(p); }
        break;
      }
      case "call_ended":
        status("the call has ended");
        hangUp(false);
        break;
      case "left":
        if (f.reason !== "leave") { status(f.reason === "replaced" ? "joined from another window" : `left: ${f.reason}`); hangUp(false); }
        break;
      case "error":
        state.errors.push(f);
        if (f.error === "call_not_found" || f.error === "call_ended") { status(f.message); hangUp(false); }
        break;
      default:
        break;
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = guest ? `guest=${encodeURIComponent(guest)}` : `access_token=${encodeURIComponent(token)}`;
    const ws = new WebSocket(`${scheme}//${location.host}/ws/signal?${query}`);
    state.ws = ws;
    ws.onopen = () => send({ type: "join", call_id: callId });
    ws.onmessage = (e) => { onFrame(JSON.parse(e.data)).catch((err) => status(`error: ${err.message}`)); };
    ws.onclose = (e) => {
      if (state.ws !== ws) return;
      if (e.code === 4401) { sessionStorage.removeItem("tau.access_token"); status("please sign in"); showLogin(); return; }
      if (!state.left) {
        status("reconnecting…");
        for (const pid of [...state.peers.keys()]) closePeer(pid);
        closeSfu();
        setTimeout(connect, 1000 + Math.random() * 1000);
      }
    };
  }

  function hangUp(tell) {
    if (tell) send({ type: "leave", call_id: callId });
    state.left = true;
    for (const pid of [...state.peers.keys()]) closePeer(pid);
    closeSfu();
    if (state.local) for (const t of state.local.getTracks()) t.stop();
    $("controls").hidden = true;
  }

  // -- controls ---------------------------------------------------------------------------------
  function toggle(kind, button, onText, offText) {
    state.muted[kind] = !state.muted[kind];
    if (state.local) for (const t of state.local.getTracks()) if (t.kind === kind) t.enabled = !state.muted[kind];
    button.setAttribute("aria-pressed", String(state.muted[kind]));
    button.textContent = state.muted[kind] ? offText : onText;
    send({ type: "mute", call_id: callId, [kind]: state.muted[kind] });
  }
  $("mic").onclick = () => toggle("audio", $("mic"), "Mute", "Unmute");
  $("cam").onclick = () => toggle("video", $("cam"), "Camera off", "Camera on");
  $("hand").onclick = () => {
    state.hand = !state.hand;
    $("hand").setAttribute("aria-pressed", String(state.hand));
    send({ type: "hand", call_id: callId, raised: state.hand });
  };
  $("leave").onclick = () => { hangUp(true); status("you left the call"); };

  function showLogin() {
    const form = $("login");
    form.hidden = false;
    form.onsubmit = async (e) => {
      e.preventDefault();
      const body = new URLSearchParams({ grant_type: "password", username: form.username.value,
                                         password: form.password.value });
      const answer = await fetch("/oauth2/token", { method: "POST", body });
      if (!answer.ok) { status("sign-in failed"); return; }
      token = (await answer.json()).access_token;
      sessionStorage.setItem("tau.access_token", token);
      form.hidden = true;
      start();
    };
  }

  async function start() {
    if (!guest && !token) { status("please sign in"); showLogin(); return; }
    try {
      state.local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
    } catch (e) {
      status(`no camera or microphone (${e.name}); joining to watch and listen`);
      state.local = new MediaStream();
    }
    attach("local", state.local);
    tile("local", "You");
    $("controls").hidden = false;
    connect();
  }

  // what tests and curious users can inspect from the console
  window.tauCall = {
    state,
    async framesDecoded() {
      const pcs = [...[...state.peers.values()].map((p) => p.pc), ...state.subs.values()];
      let total = 0;
      for (const pc of pcs) {
        const stats = await pc.getStats();
        stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") total += s.framesDecoded || 0; });
      }
      return total;
    },
  };
  start();
})();
