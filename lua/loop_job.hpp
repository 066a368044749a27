// lua/loop_job.hpp
// A binding's operation run as a go block on the state's home loop, its result awaited from Lua (natslib, ipciolib).
//
// A library binding (conch.nats, conch._ipcio) describes each call as a Job:
// a struct with `result` (chan<value>{1}, closed empty on failure), `status`
// (written before result closes) and `static constexpr const char* what`
// (the error prefix). The binding supplies `run(job)` (the coroutine doing
// the work) and `start(args)` (builds the job from plain arguments on the
// home loop and calls start_loop_job). A holder userdata above the Lua
// arguments keeps the job alive while the caller waits, so a job the caller
// abandons still finishes safely.
#pragma once

#include <memory>
#include <string>

#include "lua/bridge.hpp"

namespace conch::lua::detail {

/// A string argument, as plain data: valid while its Lua value stays on the stack.
struct text {
  const char* p = nullptr;
  std::size_t n = 0;
};
inline std::string str(const text& t) { return t.p == nullptr ? std::string() : std::string(t.p, t.n); }
inline text check_text(lua_State* L, int idx) {
  text t;
  t.p = luaL_checklstring(L, idx, &t.n);
  return t;
}

/// Runs the job and closes `result` on every path (an exception included:
/// the Lua side waits on it).
template <class Job, conch::task<absl::StatusOr<value>> (*Run)(std::shared_ptr<Job>)>
conch::task<void> loop_job_body(std::shared_ptr<Job> j) {
  try {
    absl::StatusOr<value> r = co_await Run(j);
    if (r.ok())
      j->result.try_send(std::move(*r));
    else
      j->status = r.status();
  } catch (const std::exception& e) {
    j->status = absl::InternalError(std::string(Job::what) + ": " + e.what());
  }
  j->result.close();
}

/// What a holder keeps: the job, shared with its go block.
template <class Job>
struct loop_job_ref {
  std::shared_ptr<Job> j;
};

/// In a binding's start(): starts `ref`'s go block and hands the job to the
/// holder. May throw (memory): the caller's catch leaves its `ok` false.
template <class Job, conch::task<absl::StatusOr<value>> (*Run)(std::shared_ptr<Job>)>
void start_loop_job(std::unique_ptr<loop_job_ref<Job>> ref, holder* hd) {
  conch::go(loop_job_body<Job, Run>(ref->j));
  hd->p = ref.release();
  hd->del = &delete_as<loop_job_ref<Job>>;
}

/// The continuation that pushes the job's value, or nil, err, code; the
/// holder sits at stack index HolderIndex.
template <class Job, int HolderIndex>
int loop_job_result(lua_State* L, int, lua_KContext ctx) {
  request* r = host_from(ctx)->op_request();
  bool pushed = push_received(L, r, 0);
  r->clear();
  if (pushed) return 1;
  // Closed empty: the job failed.
  auto* hd = static_cast<holder*>(lua_touserdata(L, HolderIndex));
  absl::Status st = hd != nullptr && hd->p != nullptr ? static_cast<loop_job_ref<Job>*>(hd->p)->j->status
                                                       : absl::OkStatus();
  if (st.ok()) st = absl::UnknownError(std::string(Job::what) + ": the operation was abandoned");
  return push_status(L, st);
}

/// Starts the job described by `a` (Args has `hd` and `ok`) through
/// `start` on the home loop and waits for its result. The first
/// HolderIndex - 1 stack slots are the arguments (kept alive while waiting).
template <class Job, int HolderIndex, class Args>
int run_loop_job(lua_State* L, Args& a, void (*start)(void*) noexcept) {
  host* h = host_of(L);
  lua_settop(L, HolderIndex - 1);
  a.hd = push_holder(L);  // index HolderIndex: keeps the job while we wait
  h->call_on_loop(start, &a);
  if (!a.ok) return raise_no_memory(L);
  auto* ref = static_cast<loop_job_ref<Job>*>(a.hd->p);
  return recv_core(L, h, conch::detail::get_core(ref->j->result), elem::value, &loop_job_result<Job, HolderIndex>);
}

}  // namespace conch::lua::detail
