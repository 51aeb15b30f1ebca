// Package objects is the object store the S3 API sits on: buckets and
// their objects in JetStream, streamed in and out a chunk at a time,
// and listed in S3's byte order.
//
// # Layout
//
// A record per bucket in the KV wisp_buckets, under a hash of its name
// (any name makes valid stream names and subjects, and the same name
// always finds the same streams). Per bucket:
//
//   - the KV wisp_objmeta_<id>: one record per object under its key in
//     base64url (size, MD5 ETag, chunk size, headers, user metadata,
//     checksums, and the version that names its chunks);
//   - the stream wisp_obj_<id>: the chunks, one message each, on subject
//     wisp.obj.<id>.<version>.<n>. Get reads chunk n of a range by
//     subject with a direct get, no consumer; a Put writes a new version
//     beside the old one, swaps the record under optimistic concurrency,
//     then purges the old version's subjects, so a reader of the old
//     version finishes it or fails with ErrChanged, never mixes the two;
//   - the KV wisp_objup_<id>: multipart uploads in flight under their id,
//     and their parts under <id>.<number>. Each upload of a part is a
//     version <id>.<tag> of the chunk stream; Complete writes a record
//     that lists its parts' versions in order, so joining copies nothing,
//     and one purge of <id>.> drops a whole upload (multipart.go).
//
// Listing: JetStream keeps subjects in no order a listing can use, so
// each node keeps a B-tree of a bucket's keys (with size, ETag and time)
// by following its record KV (store.FollowWatch), made on its first
// listing. A listing waits until the tree has applied the KV stream's
// last sequence as it was when the listing began, so it sees every write
// that returned before, on any node; it then walks only the keys it
// returns. Memory: about 100 bytes plus the key per object listed.
//
// # Measured
//
// BenchmarkLayout, embedded server, one connection, 2 shared CPUs (so
// noisy: two runs), ns/op, Object Store = nats.go's jetstream.ObjectStore:
//
//	           this layout      Object Store
//	4 KiB put  195-306 µs       276-309 µs
//	4 KiB get   49-52 µs        455-557 µs   (a consumer per Get)
//	1 MiB put  3.5-4.7 ms       2.5-4.0 ms   (it pipelines its chunk publishes)
//	1 MiB get  1.26-1.4 ms      2.6-2.7 ms
//
// Gets decide it: small reads are 9-11× faster by subject than through a
// consumer, and a range reads only its chunks, which the Object Store
// cannot. The Object Store's put is its async publish; this layout can
// take that up without changing the layout. A 256 MiB put and get hold
// at most 25 and 41-56 MiB of Go heap (embedded server included, see
// TestMemoryBounded).
package objects
