package edge

import (
	"strconv"
	"sync"
	"testing"

	"provision/providers/edge/edgefake"
)

func TestUserDirectory_NeverAnswersAbsentFromAnOlderListing(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	k := w.adminConn()
	var d userDirectory
	if u, _, err := d.find(t.Context(), k, "late"); err != nil || u != nil {
		t.Fatalf("before: %v %v", u, err)
	}
	// Created after the listing that said "absent": the next question sees it.
	id := w.srv.SeedUser("late", "Late12345", false, edgefake.Pending)
	u, cached, err := d.find(t.Context(), k, "late")
	if err != nil || u == nil || u.ID != id || cached {
		t.Fatalf("after: %+v cached %v err %v", u, cached, err)
	}
	// Known users come from the cache.
	if u, cached, err := d.find(t.Context(), k, "late"); err != nil || u == nil || !cached {
		t.Fatalf("again: %+v cached %v err %v", u, cached, err)
	}
}

func TestUserDirectory_ConcurrentQuestionsShareListings(t *testing.T) {
	w := newWorld(t, edgefake.Options{})
	k := w.adminConn()
	var d userDirectory
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			u, _, err := d.find(t.Context(), k, "absent-"+strconv.Itoa(i))
			if err != nil || u != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("unexpected answer: %v", err)
	}
	d.mu.Lock()
	n := d.listings
	d.mu.Unlock()
	if n >= 64 || n < 1 {
		t.Fatalf("%d listings for 64 questions", n)
	}
	t.Logf("%d listings for 64 concurrent questions", n)
}
