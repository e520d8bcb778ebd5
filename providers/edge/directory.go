package edge

import (
	"context"
	"maps"
	"sync"
)

// userDirectory shares GET /v1/admin/user listings among the tasks of an endpoint.
// The API has no filter by user name, so a lookup pages through every user; with
// one listing per task a rollout of N users would cost N full listings.
//
// Rules that keep lookups exact:
//   - "the user exists" may come from any earlier listing (provision never deletes
//     users; a status read from the cache is re-read before it is acted on);
//   - "the user does not exist" only comes from a listing that started after the
//     question was asked. Questions that arrive while a listing runs wait for the
//     next one, which serves all of them at once.
//
// Safe for concurrent use.
type userDirectory struct {
	mu      sync.Mutex
	byName  map[string]User
	next    *listing // the listing that starts when the running one ends
	running bool
	// listings counts the listings made (tests).
	listings int
}

type listing struct {
	done  chan struct{}
	users map[string]User
	err   error
}

// find returns the user named name; cached reports that it came from an earlier
// listing (its status may be stale).
func (d *userDirectory) find(ctx context.Context, k *Conn, name string) (u *User, cached bool, err error) {
	d.mu.Lock()
	if v, ok := d.byName[name]; ok {
		d.mu.Unlock()
		return &v, true, nil
	}
	d.mu.Unlock()
	return d.fresh(ctx, k, name)
}

// fresh answers from a listing that starts after this call.
func (d *userDirectory) fresh(ctx context.Context, k *Conn, name string) (*User, bool, error) {
	d.mu.Lock()
	if d.next == nil {
		d.next = &listing{done: make(chan struct{})}
	}
	l := d.next
	if !d.running {
		d.running = true
		d.next = nil
		// The listing serves every waiter: it must not end with this caller's
		// cancellation (the rest client bounds each request with its timeout).
		go d.run(context.WithoutCancel(ctx), k, l)
	}
	d.mu.Unlock()
	select {
	case <-l.done:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	if l.err != nil {
		return nil, false, l.err
	}
	if v, ok := l.users[name]; ok {
		return &v, false, nil
	}
	return nil, false, nil
}

func (d *userDirectory) run(ctx context.Context, k *Conn, l *listing) {
	for {
		users, err := k.Users(ctx)
		l.err = err
		if err == nil {
			l.users = make(map[string]User, len(users))
			for _, u := range users {
				l.users[u.Name] = u
			}
		}
		d.mu.Lock()
		d.listings++
		if err == nil {
			// A copy: setStatus edits the directory while waiters read l.users.
			d.byName = maps.Clone(l.users)
		}
		close(l.done)
		if d.next == nil {
			d.running = false
			d.mu.Unlock()
			return
		}
		l = d.next
		d.next = nil
		d.mu.Unlock()
	}
}

// remember adds a user this process created.
func (d *userDirectory) remember(u User) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byName == nil {
		d.byName = map[string]User{}
	}
	d.byName[u.Name] = u
}

// setStatus records a status change made by this process.
func (d *userDirectory) setStatus(name string, status int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u, ok := d.byName[name]; ok {
		u.Status = status
		d.byName[name] = u
	}
}
