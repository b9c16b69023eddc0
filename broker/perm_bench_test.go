package broker_test

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/bilancia/bilancia/broker"
)

// BenchmarkReplyPermission: what the dispatcher's publish list costs the
// broker, a reply at a time, each to a subject never used before (as a
// dispatcher's replies to clients' inboxes are): the dispatcher's
// credential against the admin's, which has no list. Publish and a
// flush every 256, so that the broker's work is in the time.
func BenchmarkReplyPermission(b *testing.B) {
	br, dir := startAuth(b, broker.Config{})
	for _, cred := range []string{broker.AdminCredential, broker.DispatcherCredential} {
		b.Run(cred, func(b *testing.B) {
			c := dialAs(b, br.ClientURL(), filepath.Join(dir, cred))
			data := []byte(`{"result":5}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				_ = c.Publish("_INBOX_CLIENT.default.x."+strconv.Itoa(i), data)
				if i%256 == 255 {
					_ = c.Flush()
				}
			}
			_ = c.Flush()
		})
	}
}
