/*
 * The C ABI between the Go engine (libk3core.so) and the Node binding.
 *
 * A call is started with K3Start and runs on its own goroutine; K3Start
 * returns at once. The engine reports back through `cb`, from a thread of
 * its own, with the caller's `ctx`:
 *   - zero or more times with K3_EVENT (progress), then
 *   - exactly once with K3_RESULT or K3_ERROR (a JSON document).
 * `payload` is malloc'd by the engine and owned by the callee from then on:
 * it must be released with free(), once.
 * K3Cancel asks a running call to stop; its final callback still comes.
 */
#ifndef K3CORE_H
#define K3CORE_H

#include <stddef.h>
#include <stdint.h>

#define K3_RESULT 0
#define K3_ERROR 1
#define K3_EVENT 2

typedef void (*k3_callback)(void *ctx, int kind, char *payload, size_t len);

#ifndef K3_GO_SIDE /* cgo declares the exported functions itself */
#ifdef __cplusplus
extern "C" {
#endif
void K3Start(uint64_t call_id, char *method, char *args, size_t args_len, k3_callback cb, void *ctx);
void K3Cancel(uint64_t call_id);
#ifdef __cplusplus
}
#endif
#endif

#endif
