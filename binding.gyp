{
  "targets": [
    {
      "target_name": "k3core",
      "sources": ["binding/k3.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "golib"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
      ],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": [
        "-L<(module_root_dir)/build/Release",
        "-lk3core",
        "-Wl,-rpath,'$$ORIGIN'",
        "-Wl,-z,nodelete"
      ]
    }
  ]
}
