// A tiny web service: answers on $PORT with a page naming the instance that served it.
const http = require("http");
const os = require("os");

const port = parseInt(process.env.PORT || "5000", 10);
const dyno = process.env.DYNO || "local";
const rev = (process.env.GIT_REV || "unknown").slice(0, 7);
const greeting = process.env.GREETING || "Hello from Shipmate";

const server = http.createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("ok\n");
    return;
  }
  res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
  res.end(`<!doctype html>
<html><head><title>code.it</title></head>
<body><h1>${greeting}</h1>
<p>Served by ${dyno} on ${os.hostname()}, revision ${rev}.</p>
</body></html>
`);
});

server.listen(port, "0.0.0.0", () => {
  console.log(`code.it listening on port ${port} as ${dyno}`);
});

process.on("SIGTERM", () => server.close(() => process.exit(0)));
