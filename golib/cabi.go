// Command golib is built with -buildmode=c-shared into libk3core.so. This
// file is its whole C ABI (see k3core.h): it moves bytes across the boundary
// and nothing else; every operation lives in package engine.
package main

/*
#define K3_GO_SIDE
#include <stdlib.h>
#include "k3core.h"

#include <signal.h>

static inline void k3_invoke(k3_callback cb, void *ctx, int kind, char *payload, size_t len) {
	cb(ctx, kind, payload, len);
}

// Node's libuv installs its SIGCHLD handler when it first needs it, without
// SA_ONSTACK. SIGCHLD may land on a Go thread, where a handler without
// SA_ONSTACK runs on a goroutine's stack and crashes the process (Go asks
// foreign handlers for SA_ONSTACK, and adds it only to those present when it
// loads). So every call makes sure the current handler has it.
static void k3_sigchld_onstack(void) {
	struct sigaction sa;
	if (sigaction(SIGCHLD, NULL, &sa) != 0) return;
	if ((sa.sa_flags & SA_ONSTACK) != 0) return;
	if (!(sa.sa_flags & SA_SIGINFO) && (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)) return;
	sa.sa_flags |= SA_ONSTACK;
	sigaction(SIGCHLD, &sa, NULL);
}
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"unsafe"

	"github.com/k3-core/k3-core/golib/engine"
	"github.com/k3-core/k3-core/golib/errcat"
	"github.com/k3-core/k3-core/golib/safego"
)

var (
	theEngine = engine.New()
	// running maps call IDs to the cancel functions of their contexts.
	running sync.Map
)

// K3Start starts method with its JSON arguments on a goroutine. ctx is the
// caller's and is only handed back through cb, never dereferenced here.
//
//export K3Start
func K3Start(callID C.uint64_t, method *C.char, args *C.char, argsLen C.size_t, cb C.k3_callback, ctx unsafe.Pointer) {
	C.k3_sigchld_onstack()
	id := uint64(callID)
	m := C.GoString(method)
	a := C.GoBytes(unsafe.Pointer(args), C.int(argsLen))
	callCtx, cancel := context.WithCancel(context.Background())
	running.Store(id, cancel)
	safego.Go(func() error {
		defer running.Delete(id)
		defer cancel()
		emit := func(event any) {
			if payload, err := json.Marshal(event); err == nil {
				C.k3_invoke(cb, ctx, C.K3_EVENT, (*C.char)(C.CBytes(payload)), C.size_t(len(payload)))
			}
		}
		kind, payload := run(callCtx, m, a, emit)
		// C.CBytes mallocs; the callee owns and frees the copy.
		C.k3_invoke(cb, ctx, C.int(kind), (*C.char)(C.CBytes(payload)), C.size_t(len(payload)))
		return nil
	}, nil)
}

// K3Cancel cancels the context of a running call; unknown IDs are ignored.
//
//export K3Cancel
func K3Cancel(callID C.uint64_t) {
	if cancel, ok := running.Load(uint64(callID)); ok {
		cancel.(context.CancelFunc)()
	}
}

// run never panics: a panic would take the whole Node process with it.
func run(ctx context.Context, method string, request []byte, emit func(any)) (kind int, payload []byte) {
	defer func() {
		if r := recover(); r != nil {
			kind, payload = encodeError(errcat.New(method, errcat.Generic, fmt.Sprintf("internal error: %v", r), nil))
		}
	}()
	result, err := theEngine.Call(ctx, method, request, emit)
	if err != nil {
		return encodeError(err.(*errcat.Error))
	}
	out, merr := json.Marshal(result)
	if merr != nil {
		return encodeError(errcat.New(method, errcat.Generic, "result could not be encoded: "+merr.Error(), merr))
	}
	return C.K3_RESULT, out
}

func encodeError(e *errcat.Error) (int, []byte) {
	out, err := json.Marshal(e.ToWire())
	if err != nil {
		out = []byte(`{"op":"","class":"GenericFailure","details":{"error":"error could not be encoded"}}`)
	}
	return C.K3_ERROR, out
}

func main() {}
