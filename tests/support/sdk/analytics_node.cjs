// Sends events with Segment's official Node SDK (@segment/analytics-node, pinned in
// infra/sdk and installed by scripts/bootstrap.sh), as a site's server would, and prints
// what the SDK reported: one JSON object on stdout, {"errors": [...]}.
// Input (argv[2]): {"host", "writeKey", "events": [{"call": "track" or "page", "messageId",
// "event" or "name", "userId", "properties", "timestamp"}]}.
"use strict";

const { Analytics } = require(process.env.CLICKSTREAM_ANALYTICS_NODE);

async function main() {
  const input = JSON.parse(process.argv[2]);
  const errors = [];
  const analytics = new Analytics({
    writeKey: input.writeKey,
    host: input.host,
    flushAt: input.events.length,
    flushInterval: 200,
    maxRetries: 5,
  });
  analytics.on("error", (error) => errors.push(String(error && error.reason ? error.reason : error)));
  for (const { call, ...event } of input.events) {
    const message = { ...event, timestamp: event.timestamp ? new Date(event.timestamp) : undefined };
    if (call === "page") analytics.page(message);
    else analytics.track(message);
  }
  await analytics.closeAndFlush({ timeout: 60000 });
  process.stdout.write(JSON.stringify({ errors }) + "\n");
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
