// Starts the fauxqs SQS emulator on 127.0.0.1 at the port given as the first argument.
import { buildApp } from "fauxqs";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node launch.mjs PORT");
  process.exit(2);
}
const app = buildApp({ logger: false });
await app.listen({ port, host: "127.0.0.1" });
console.log(`fauxqs listening on ${port}`);
