// A Lambda handler, unchanged from what runs on AWS. As a function URL it
// answers the greeting; invoked directly it echoes who it greets.
exports.handler = async (event) => {
  const name = event?.queryStringParameters?.name ?? event?.name ?? "world";
  return { statusCode: 200, headers: { "content-type": "text/plain" }, body: `hello, ${name}\n` };
};
