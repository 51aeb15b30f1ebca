// Package apitype holds what crosses the wire of a Wisp node's API (/v1,
// and the errors of the Lambda Invoke API): the JSON types, the error type
// names with their HTTP statuses, and the rules a caller checks before it
// sends (names, topics, durations, code archives' entry names). It imports
// only the standard library, so a program that talks to a node pulls in
// nothing of the node; the node converts its storage records to these
// types at its edge.
package apitype
