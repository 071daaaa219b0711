package events

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Many writers at once, across rotations while it follows: a follower
// sees every event once, in the order each writer wrote them.
func TestFollowSeesEveryEventAcrossRotations(t *testing.T) {
	root := t.TempDir()
	MaxSize = 8 << 10
	PollInterval = 5 * time.Millisecond
	defer func() { MaxSize = 4 << 20; PollInterval = 100 * time.Millisecond }()
	since := time.Now()
	var wg sync.WaitGroup
	wg.Add(writers)
	time.AfterFunc(20*time.Millisecond, func() { writeAll(t, root, &wg) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	next := map[string]int{}
	seen := 0
	err := Follow(ctx, root, since, time.Time{}, func(ev Event) {
		if want := fmt.Sprint(next[ev.Actor.ID]); ev.Actor.Attributes["n"] != want {
			t.Errorf("%s: event %s, want %s", ev.Actor.ID, ev.Actor.Attributes["n"], want)
		}
		next[ev.Actor.ID]++
		if seen++; seen == writers*each {
			cancel()
		}
	})
	wg.Wait()
	if seen != writers*each {
		t.Fatalf("saw %d events, want %d (%v)", seen, writers*each, err)
	}
	if _, err := os.Stat(filepath.Join(root, oldName)); err != nil {
		t.Fatalf("the journal never rotated: %v", err)
	}
}

const writers, each = 4, 50

func writeAll(t *testing.T, root string, wg *sync.WaitGroup) {
	for w := 0; w < writers; w++ {
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := Append(root, New("container", "start", fmt.Sprintf("w%d", w), map[string]string{"n": fmt.Sprint(i)})); err != nil {
					t.Error(err)
				}
				time.Sleep(time.Millisecond)
			}
		}(w)
	}
}

func TestFollowStopsAtUntilAndSkipsBeforeSince(t *testing.T) {
	root := t.TempDir()
	Append(root, New("image", "pull", "sha256:aaaa", nil))
	time.Sleep(2 * time.Millisecond)
	since := time.Now()
	Append(root, New("image", "tag", "sha256:bbbb", nil))
	until := time.Now()
	time.Sleep(2 * time.Millisecond)
	Append(root, New("image", "untag", "sha256:cccc", nil))
	var got []string
	if err := Follow(context.Background(), root, since, until, func(ev Event) { got = append(got, ev.Action) }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[tag]" {
		t.Fatalf("got %v, want [tag]", got)
	}
}

func TestFiltersMatchAsDockerDoes(t *testing.T) {
	c := New("container", "die", "0123456789abcdef", map[string]string{"name": "web", "image": "busybox:latest"})
	img := New("image", "tag", "sha256:fedcba9876543210", map[string]string{"name": "busybox:latest"})
	for _, tc := range []struct {
		f    Filters
		ev   Event
		want bool
	}{
		{Filters{"type": {"container"}}, c, true},
		{Filters{"type": {"image"}}, c, false},
		{Filters{"event": {"start", "die"}}, c, true},
		{Filters{"container": {"web"}}, c, true},
		{Filters{"container": {"0123456789ab"}}, c, true},
		{Filters{"container": {"we"}}, c, false},
		{Filters{"image": {"busybox:latest"}}, c, true},
		{Filters{"image": {"busybox:latest"}}, img, true},
		{Filters{"image": {"docker.io/library/busybox"}}, c, true},
		{Filters{"image": {"busybox:1"}}, c, false},
		{Filters{"image": {"fedcba98"}}, img, true},
		{Filters{"container": {"web"}}, img, false},
		{Filters{"type": {"container"}, "event": {"start"}}, c, false},
	} {
		if got := tc.f.Match(tc.ev); got != tc.want {
			t.Errorf("%v on %s %s: got %v", tc.f, tc.ev.Type, tc.ev.Action, got)
		}
	}
}
