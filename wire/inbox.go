package wire

import (
	"errors"
	"fmt"
	"strings"
)

// Replies go only to inboxes. A reply subject comes from whoever sent the
// request; a role that published to any subject it named would publish on
// the sender's behalf wherever the role itself may (a heartbeat, a
// hand-over, a forward): a confused deputy. So every responder checks the
// reply subject against the inbox prefixes first, and refuses anything
// else without publishing, as NATS's allow_responses does in the broker.

// Inbox roots: nats.go's default inbox, and the ones broker --auth gives
// each client and each worker credential ("_INBOX_CLIENT.<name>",
// "_INBOX_WORKER.<name>").
const (
	ServerInboxRoot = "_INBOX"
	ClientInboxRoot = "_INBOX_CLIENT"
	WorkerInboxRoot = "_INBOX_WORKER"
)

// DefaultInboxPrefixes are the reply subjects' prefixes every role
// accepts: nats.go's inboxes, and the clients' and workers' under broker
// --auth.
var DefaultInboxPrefixes = []string{ServerInboxRoot + ".", ClientInboxRoot + ".", WorkerInboxRoot + "."}

// ErrInboxPrefix reports an inbox prefix a role refuses to reply under.
var ErrInboxPrefix = errors.New("wire: an inbox prefix must be a literal subject outside the Bilancia prefix and the $ subjects")

// Inboxes is the set of prefixes a role replies under. The zero value
// allows DefaultInboxPrefixes and refuses subjects under DefaultPrefix;
// NewInboxes adds more.
type Inboxes struct {
	prefixes []string // each ends with '.'
	root     string   // the Bilancia prefix and a dot, never replied under
}

// NewInboxes returns the inboxes of a deployment with Bilancia prefix
// prefix ("" = DefaultPrefix): DefaultInboxPrefixes and extra, each a
// literal subject ("_INBOX_APP" or "_INBOX_APP."), which must not be the
// Bilancia prefix or under it, nor start with '$' ($SYS, $SRV, $JS).
func NewInboxes(prefix string, extra ...string) (Inboxes, error) {
	root := Subjects{Prefix: prefix}.Root() + "."
	in := Inboxes{prefixes: append([]string(nil), DefaultInboxPrefixes...), root: root}
	for _, p := range extra {
		p = strings.TrimSuffix(p, ".")
		if p == "" || p[0] == '$' || !ValidSubject(p) || strings.HasPrefix(p+".", root) || strings.HasPrefix(root, p+".") {
			return Inboxes{}, fmt.Errorf("%w: %s", ErrInboxPrefix, QuoteCut(p, 64))
		}
		in.prefixes = append(in.prefixes, p+".")
	}
	return in, nil
}

// Allows tells whether a reply may be published on subj: a literal
// subject with at least one token after one of the inbox prefixes, not
// under the Bilancia prefix nor a '$' subject.
func (in Inboxes) Allows(subj string) bool {
	prefixes, root := in.prefixes, in.root
	if prefixes == nil {
		prefixes, root = DefaultInboxPrefixes, DefaultPrefix+"."
	}
	if len(subj) > maxReplySubject || strings.HasPrefix(subj, root) {
		return false
	}
	ok := false
	for _, p := range prefixes {
		if len(subj) > len(p) && subj[:len(p)] == p {
			ok = true
			break
		}
	}
	return ok && literal(subj)
}

// Prefixes lists the prefixes allowed, each ending with a dot.
func (in Inboxes) Prefixes() []string {
	if in.prefixes == nil {
		return append([]string(nil), DefaultInboxPrefixes...)
	}
	return append([]string(nil), in.prefixes...)
}

// IsReplySubject tells whether subj is under one of prefixes (each
// ending with a dot) and a literal subject: Inboxes.Allows for a list.
func IsReplySubject(subj string, prefixes []string) bool {
	in := Inboxes{prefixes: prefixes, root: DefaultPrefix + "."}
	if prefixes == nil {
		in.prefixes = []string{}
	}
	return in.Allows(subj)
}

// maxReplySubject bounds a reply subject in bytes: nats.go's inboxes are
// well under it, and a request carries its reply subject into every
// message about it.
const maxReplySubject = 256

// literal tells whether subj is a subject one may publish on: no empty
// token, no wildcard token, no white space or control character.
func literal(subj string) bool {
	start := 0
	for i := 0; i <= len(subj); i++ {
		if i == len(subj) || subj[i] == '.' {
			tok := subj[start:i]
			if tok == "" || tok == "*" || tok == ">" {
				return false
			}
			start = i + 1
			continue
		}
		if c := subj[i]; c <= ' ' || c == 127 {
			return false
		}
	}
	return true
}
