{
  "targets": [
    {
      "target_name": "tsrun_native",
      "sources": ["native/addon.c", "native/seccomp.c", "native/layer.c", "native/overlay.c", "native/remove.c", "native/netdev.c", "native/criu.c"],
      "libraries": ["-lseccomp", "-lpthread"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-std=gnu11"],
      "actions": [
        {
          "action_name": "static_helpers",
          "inputs": ["native/init.c", "native/checker.c", "native/seccomp-agent.c", "native/plan.h", "native/in-root.h", "native/plan-ops.h", "native/plan-decode.h", "native/sched-attr.h", "native/Makefile"],
          "outputs": ["native/out/tsrun-init", "native/out/tsrun-checker", "native/out/tsrun-seccomp-agent"],
          "action": ["make", "-s", "-C", "native"]
        }
      ]
    }
  ]
}
