// The N-API binding: one generic asynchronous call path into the Go engine.
//
//   start(method, argsJson, onEvent?) -> [callId, promise]
//   cancel(callId)
//
// The engine runs each call on a goroutine and reports back from its own
// thread (see golib/k3core.h). Each call gets a thread-safe function that
// carries those reports to the JS thread that started it, where the promise
// is settled with the engine's JSON (resolved for a result, rejected for an
// error) and events go to onEvent. No libuv pool thread is ever held.
//
// Worker threads may be terminated with calls in flight. Their environment's
// cleanup hook marks those calls orphaned and cancels them; the engine's
// final report for an orphaned call then frees it without touching the dead
// environment. One mutex guards that hand-over, so each call and each
// payload is freed exactly once.

#include <napi.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "k3core.h"

namespace {

struct Call {
  uint64_t id;
  napi_env env;
  napi_deferred deferred;
  napi_ref on_event;  // may be null
  napi_threadsafe_function tsfn;
  bool orphaned;  // guarded by g_mutex
};

struct Report {
  Call* call;
  int kind;
  char* payload;
  size_t len;
};

std::atomic<uint64_t> g_next_id{1};
std::mutex g_mutex;
// Calls in flight per environment; guarded by g_mutex.
std::unordered_map<napi_env, std::unordered_set<Call*>> g_live;

bool IsFinal(int kind) { return kind != K3_EVENT; }

// Forget a finished call. Caller holds g_mutex.
void Forget(Call* call) {
  auto it = g_live.find(call->env);
  if (it != g_live.end()) it->second.erase(call);
}

// Runs on the JS thread, or with env == nullptr while the environment is
// being torn down (then only memory is released).
void Deliver(napi_env env, napi_value /*js_cb*/, void* /*context*/, void* data) {
  auto* report = static_cast<Report*>(data);
  Call* call = report->call;
  if (env == nullptr) {
    free(report->payload);
    if (IsFinal(report->kind)) {
      std::lock_guard<std::mutex> lock(g_mutex);
      Forget(call);
      delete call;
    }
    delete report;
    return;
  }

  Napi::Env napi_env(env);
  Napi::HandleScope scope(napi_env);
  Napi::String json = Napi::String::New(napi_env, report->payload, report->len);
  free(report->payload);
  int kind = report->kind;
  delete report;

  if (!IsFinal(kind)) {
    if (call->on_event != nullptr) {
      napi_value fn;
      if (napi_get_reference_value(env, call->on_event, &fn) == napi_ok && fn != nullptr) {
        napi_value argv[] = {json};
        napi_value ignored;
        napi_call_function(env, napi_env.Undefined(), fn, 1, argv, &ignored);
      }
    }
    return;
  }

  {
    std::lock_guard<std::mutex> lock(g_mutex);
    Forget(call);
  }
  if (kind == K3_RESULT) {
    napi_resolve_deferred(env, call->deferred, json);
  } else {
    napi_reject_deferred(env, call->deferred, json);
  }
  if (call->on_event != nullptr) napi_delete_reference(env, call->on_event);
  delete call;
}

// Called by the engine, on one of its threads.
void OnReport(void* ctx, int kind, char* payload, size_t len) {
  auto* call = static_cast<Call*>(ctx);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (call->orphaned) {
    free(payload);
    if (IsFinal(kind)) delete call;  // its environment is gone; nobody else holds it
    return;
  }
  auto* report = new Report{call, kind, payload, len};
  napi_status status = napi_call_threadsafe_function(call->tsfn, report, napi_tsfn_blocking);
  if (status != napi_ok) {
    // The environment is closing and has dropped our reference already.
    free(payload);
    delete report;
    call->orphaned = true;
    if (IsFinal(kind)) {
      Forget(call);
      delete call;
    }
    return;
  }
  if (IsFinal(kind)) napi_release_threadsafe_function(call->tsfn, napi_tsfn_release);
}

void OnEnvCleanup(void* arg) {
  auto env = static_cast<napi_env>(arg);
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_live.find(env);
  if (it == g_live.end()) return;
  for (Call* call : it->second) {
    call->orphaned = true;
    K3Cancel(call->id);
  }
  g_live.erase(it);
}

Napi::Value Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    Napi::TypeError::New(env, "start(method, argsJson, onEvent?)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string method = info[0].As<Napi::String>();
  std::string args = info[1].As<Napi::String>();

  auto* call = new Call{g_next_id.fetch_add(1), env, nullptr, nullptr, nullptr, false};
  napi_value promise;
  if (napi_create_promise(env, &call->deferred, &promise) != napi_ok) {
    delete call;
    Napi::Error::New(env, "k3-core: could not create a promise").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (info.Length() > 2 && info[2].IsFunction()) {
    napi_create_reference(env, info[2], 1, &call->on_event);
  }
  napi_value resource_name = Napi::String::New(env, "k3-core:" + method);
  napi_status status = napi_create_threadsafe_function(env, nullptr, nullptr, resource_name, 0, 1, nullptr,
                                                       nullptr, call, Deliver, &call->tsfn);
  if (status != napi_ok) {
    if (call->on_event != nullptr) napi_delete_reference(env, call->on_event);
    napi_reject_deferred(env, call->deferred, Napi::String::New(env, "{}"));
    delete call;
    Napi::Error::New(env, "k3-core: could not create a thread-safe function").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_live[env].insert(call);
  }
  uint64_t id = call->id;
  K3Start(id, const_cast<char*>(method.c_str()), const_cast<char*>(args.data()), args.size(), OnReport, call);

  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, Napi::Number::New(env, static_cast<double>(id)));
  pair.Set(1u, promise);
  return pair;
}

Napi::Value Cancel(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) {
    K3Cancel(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
  }
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  napi_add_env_cleanup_hook(env, OnEnvCleanup, static_cast<napi_env>(env));
  exports.Set("start", Napi::Function::New(env, Start, "start"));
  exports.Set("cancel", Napi::Function::New(env, Cancel, "cancel"));
  return exports;
}

}  // namespace

NODE_API_MODULE(k3core, Init)
