// Package objects is the object store the S3 API sits on: buckets and
// their objects in JetStream.
package objects
