// CS_TARGET_PUSH("avx2,fma") ... CS_TARGET_POP(): every function defined between them is
// compiled for that instruction set, whatever the flags of the file (GCC: #pragma GCC target;
// clang: #pragma clang attribute). Include standard headers before the region: only code
// defined inside it gets the target, so library templates stay baseline and the binary still
// runs on older CPUs.
#pragma once

#define CS_PRAGMA_STR(x) #x
#define CS_PRAGMA(x) _Pragma(CS_PRAGMA_STR(x))
#if defined(__clang__)
#define CS_TARGET_PUSH(isa) \
  CS_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define CS_TARGET_POP() CS_PRAGMA(clang attribute pop)
#else
#define CS_TARGET_PUSH(isa) CS_PRAGMA(GCC push_options) CS_PRAGMA(GCC target(isa))
#define CS_TARGET_POP() CS_PRAGMA(GCC pop_options)
#endif
