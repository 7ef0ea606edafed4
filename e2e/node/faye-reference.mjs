// The reference server: the official faye npm package's NodeAdapter (default options unless told),
// mounted at /faye, on loopback. Benchmarks and the compatibility tests of our own browser client
// run against it side by side with the chat server.
//
//   node faye-reference.mjs [port] [timeout]
//
// port 0 or none: a free port; timeout: seconds a /meta/connect is held (Faye's option; none:
// Faye's default).
//
// It prints one line, "listening <port> pid <pid>", once it accepts connections, and serves
// /faye/client.js (the official browser bundle) like a Faye deployment would. It stops on
// SIGTERM or SIGINT.
import http from 'node:http';
import faye from 'faye';

const port = Number(process.argv[2] || 0);
const options = { mount: '/faye' };
if (process.argv[3]) options.timeout = Number(process.argv[3]);
const bayeux = new faye.NodeAdapter(options);
const server = http.createServer((req, res) => {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found\n');
});
bayeux.attach(server);
server.listen(port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port} pid ${process.pid}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
