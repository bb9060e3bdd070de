// Run first in every document of a context whose URL policy refuses sub-resources
// (block_subresources). It removes the web APIs whose traffic passes no request route:
// WebRTC (STUN/TURN over UDP to any address, and peers' addresses from the remote side),
// WebTransport (QUIC over UDP), and workers: a shared worker's requests and a dedicated
// worker's WebSockets bypass every route, and a worker's scope cannot be reached before its
// script runs. Service workers are refused by the context itself (service_workers="block").
() => {
  for (const name of ['RTCPeerConnection', 'webkitRTCPeerConnection', 'WebTransport', 'SharedWorker', 'Worker']) {
    delete globalThis[name];
  }
}
