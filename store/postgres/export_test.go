package postgres

import "context"

// WithoutFollower leaves the follower goroutine off, so a test decides
// when the store looks for other nodes' changes (CatchUp).
func WithoutFollower() Option { return func(o *options) { o.noFollow = true } }

// CatchUp runs one catch-up as the follower would.
func (s *Store) CatchUp(ctx context.Context) { s.catchUp(ctx) }

// ListenerAppName is the application_name of the LISTEN connection.
const ListenerAppName = listenerAppName
