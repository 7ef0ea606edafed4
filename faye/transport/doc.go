// Package transport carries the Bayeux engine (package faye) over HTTP: long-polling and
// cross-origin long-polling (POST), callback-polling (JSONP GET), EventSource streams, and
// websockets (the RFC 6455 protocol, framed by faye/wsframe, on the socket event loop of
// faye/sockloop), plus the browser client at <mount>/client.js. Register mounts it on a Fiber
// app and sets what it needs of the app's HTTP server. It speaks to the engine only through
// the engine's exported seam (Process, Answer, Stream, StreamClient, Consumer, Sink) and never
// touches sessions; nothing but the server wiring may import it, and neither faye nor
// faye/sockloop may.
package transport
