// A hostile function for the soak (go run ./bench -soak 60s): it writes 16 KiB
// lines to stderr in a tight loop that never yields, until the node stops it
// at its timeout.
const line = "n".repeat(16383) + "\n";

exports.handler = async () => {
  for (;;) process.stderr.write(line);
};
