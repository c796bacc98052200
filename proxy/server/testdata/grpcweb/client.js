// A gRPC-Web client for proxy/server's tests: the official grpc-web library
// (the one browsers load), under node with an npm XMLHttpRequest emulation
// standing in for the browser's. Text mode uses xmlhttprequest-ssl 1.6
// (socket.io's fork of the xmlhttprequest package), which, like a browser,
// exposes responseText as it grows, so a stream's messages surface one by
// one (the original package sends "Accept: */*, <ours>", which asks for a
// binary response, and xhr2 and later forks fill responseText only at the
// end); binary mode needs responseType
// 'arraybuffer', which only xhr2 implements (and which browsers, too,
// deliver only when the response is complete). Messages stay opaque bytes:
// the Go test encodes requests and decodes responses with the real
// protobuf types.
//
// stdin: {"url": "http://host:port", "format": "text" | "binary",
//         "calls": [{"method": "/pkg.Service/Method",
//                    "type": "unary" | "server_streaming",
//                    "request": "<base64 message>",
//                    "metadata": {"key": "value"}}]}
// stdout, one JSON object a line, as events happen:
//   {"call": i, "event": "metadata", "metadata": {...}}
//   {"call": i, "event": "data", "data": "<base64 message>"}
//   {"call": i, "event": "status", "code": n, "details": "...", "metadata": {...}}
//   {"call": i, "event": "error", "code": n, "message": "...", "metadata": {...}}
//   {"call": i, "event": "end"}        (the call is over, whatever happened)
// The calls run one after another.
'use strict';

const grpcWeb = require('grpc-web');

class Bytes {
  constructor(b) { this.b = b; }
}
const serialize = (m) => m.b;
const deserialize = (b) => new Bytes(b);

function emit(o) { process.stdout.write(JSON.stringify(o) + '\n'); }

function run(job, i, call) {
  return new Promise((resolve) => {
    const client = new grpcWeb.GrpcWebClientBase({ format: job.format });
    const type = call.type === 'unary' ? grpcWeb.MethodType.UNARY : grpcWeb.MethodType.SERVER_STREAMING;
    const desc = new grpcWeb.MethodDescriptor(call.method, type, Bytes, Bytes, serialize, deserialize);
    const req = new Bytes(Uint8Array.from(Buffer.from(call.request || '', 'base64')));
    const url = job.url + call.method;
    let ended = false;
    const end = () => {
      if (!ended) {
        ended = true;
        emit({ call: i, event: 'end' });
        resolve();
      }
    };
    const onError = (err) => emit({ call: i, event: 'error', code: err.code, message: err.message, metadata: err.metadata || {} });
    let stream;
    if (call.type === 'unary') {
      stream = client.rpcCall(url, req, call.metadata || {}, desc, (err, resp) => {
        if (err) {
          onError(err);
        } else {
          emit({ call: i, event: 'data', data: Buffer.from(resp.b).toString('base64') });
        }
        // The status event of a unary call comes with or after the
        // callback: give it its turn before ending.
        setImmediate(end);
      });
    } else {
      stream = client.serverStreaming(url, req, call.metadata || {}, desc);
      stream.on('data', (resp) => emit({ call: i, event: 'data', data: Buffer.from(resp.b).toString('base64') }));
      stream.on('error', (err) => { onError(err); end(); });
      stream.on('end', end);
    }
    stream.on('metadata', (md) => emit({ call: i, event: 'metadata', metadata: md }));
    stream.on('status', (st) => emit({ call: i, event: 'status', code: st.code, details: st.details, metadata: st.metadata || {} }));
  });
}

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', async () => {
  const job = JSON.parse(input);
  global.XMLHttpRequest = job.format === 'text' ? require('xmlhttprequest-ssl') : require('xhr2');
  for (let i = 0; i < job.calls.length; i++) {
    await run(job, i, job.calls[i]);
  }
  // Keep-alive sockets would hold node open.
  process.exit(0);
});
