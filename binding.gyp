{
  "targets": [
    {
      "target_name": "tsrun_native",
      "sources": ["native/addon.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-std=gnu11"],
      "actions": [
        {
          "action_name": "static_helpers",
          "inputs": ["native/init.c", "native/checker.c", "native/plan.h", "native/Makefile"],
          "outputs": ["native/out/tsrun-init", "native/out/tsrun-checker"],
          "action": ["make", "-s", "-C", "native"]
        }
      ]
    }
  ]
}
