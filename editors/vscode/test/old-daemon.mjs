// A devenvd of an older protocol, for the "daemon too old" test (test/run.mjs): a gRPC
// server on a Unix socket that answers DaemonService.Version as a daemon speaking
// protocol 0 would (this extension speaks PROTOCOL_VERSION, 1) and Shutdown as any
// devenvd does (reply, remove the socket, exit, nothing in between). Everything else is UNIMPLEMENTED,
// as an old daemon knows nothing newer. It encodes VersionResponse's first fields
// (daemon_version = 1, protocol_version = 2, pid = 3) itself: those are the fields a
// client reads before anything else, and they never move between protocol versions.
//
//   node old-daemon.mjs SOCKET     prints "ready" once it listens; runs until Shutdown
import * as fs from "node:fs";

import { Server, ServerCredentials } from "@grpc/grpc-js";
import { BinaryWriter, WireType } from "@protobuf-ts/runtime";

const [socket] = process.argv.slice(2);
if (!socket) {
  console.error("usage: old-daemon.mjs SOCKET");
  process.exit(2);
}

const OLD_VERSION = "0.0.1-old";
const passBytes = { requestSerialize: (b) => b, requestDeserialize: (b) => b };

const server = new Server();
server.addService(
  {
    version: {
      path: "/devenv.v1.DaemonService/Version",
      requestStream: false,
      responseStream: false,
      ...passBytes,
      responseSerialize: (b) => b,
      responseDeserialize: (b) => b,
    },
    shutdown: {
      path: "/devenv.v1.DaemonService/Shutdown",
      requestStream: false,
      responseStream: false,
      ...passBytes,
      responseSerialize: (b) => b,
      responseDeserialize: (b) => b,
    },
  },
  {
    version: (_call, reply) => {
      const w = new BinaryWriter();
      w.tag(1, WireType.LengthDelimited).string(OLD_VERSION);
      w.tag(2, WireType.Varint).uint32(0);
      w.tag(3, WireType.Varint).uint32(process.pid);
      reply(null, Buffer.from(w.finish()));
    },
    shutdown: (_call, reply) => {
      reply(null, Buffer.alloc(0));
      // As devenvd (crates/devenvd/src/server.rs): the reply goes out, the socket is
      // removed while it is still ours, and the process ends in the same breath (the
      // kernel closes the listener). Never remove the path after waiting for anything
      // (as server.tryShutdown's callback would, once every connection closed): by then
      // `devenv daemon stop` may have seen it gone and a new daemon bound the same path,
      // whose socket would be deleted, leaving a daemon nobody can reach. Nor close the
      // server first: Node unlinks a Unix socket's path when its listener closes.
      setImmediate(() => {
        fs.rmSync(socket, { force: true });
        process.exit(0);
      });
    },
  },
);
server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(`old-daemon: cannot listen on ${socket}: ${err.message}`);
    process.exit(1);
  }
  console.log("ready");
});
