// Do small per-layer transfers wait behind expert copies? Times small transfers on one stream
// (pageable and pinned H2D, a kernel-parameter write, a D2H) while 4 x 10 MiB pinned H2D copies
// run on another stream, and without them; medians of 60. A one-off probe (docs/PERF.md,
// 2026-11-29), not built by CMake:
//   nvcc -O2 -arch=sm_90 -o dma_probe tools/probes/dma_probe.cu && ./dma_probe
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#define CK(x)                                             \
  do {                                                    \
    cudaError_t e = (x);                                  \
    if (e != cudaSuccess) {                               \
      std::printf("%s: %s\n", #x, cudaGetErrorString(e)); \
      return 1;                                           \
    }                                                     \
  } while (0)

struct Param {
  unsigned char b[4000];
};

__global__ void put(Param p, unsigned char* dst) {
  for (int i = threadIdx.x; i < 4000; i += blockDim.x) dst[i] = p.b[i];
}

int main() {
  cudaDeviceProp pr;
  CK(cudaGetDeviceProperties(&pr, 0));
  std::printf("%s asyncEngineCount %d\n", pr.name, pr.asyncEngineCount);
  const size_t big = 10u << 20, small = 18432;
  void *hbig, *dbig, *dsmall, *hpin;
  CK(cudaMallocHost(&hbig, 4 * big));
  CK(cudaMalloc(&dbig, 4 * big));
  CK(cudaMalloc(&dsmall, small));
  CK(cudaMallocHost(&hpin, small));
  std::vector<unsigned char> page(small, 1);
  cudaStream_t copies, work;
  CK(cudaStreamCreateWithFlags(&copies, cudaStreamNonBlocking));
  CK(cudaStreamCreateWithFlags(&work, cudaStreamNonBlocking));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  Param prm{};
  const char* names[] = {"H2D pageable 18 KiB", "H2D pinned 18 KiB", "kernel-param write 4 KB",
                         "D2H 4 KiB"};
  for (int busy = 0; busy < 2; ++busy)
    for (int kind = 0; kind < 4; ++kind) {
      std::vector<float> gpu, host;
      for (int it = 0; it < 60; ++it) {
        if (busy)
          for (int j = 0; j < 4; ++j)
            CK(cudaMemcpyAsync(static_cast<char*>(dbig) + j * big,
                               static_cast<char*>(hbig) + j * big, big, cudaMemcpyHostToDevice,
                               copies));
        const auto t0 = std::chrono::steady_clock::now();
        CK(cudaEventRecord(e0, work));
        if (kind == 0)
          CK(cudaMemcpyAsync(dsmall, page.data(), small, cudaMemcpyHostToDevice, work));
        if (kind == 1) CK(cudaMemcpyAsync(dsmall, hpin, small, cudaMemcpyHostToDevice, work));
        if (kind == 2) put<<<1, 256, 0, work>>>(prm, static_cast<unsigned char*>(dsmall));
        if (kind == 3) CK(cudaMemcpyAsync(page.data(), dsmall, 4096, cudaMemcpyDeviceToHost, work));
        CK(cudaEventRecord(e1, work));
        const auto t1 = std::chrono::steady_clock::now();
        CK(cudaEventSynchronize(e1));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        gpu.push_back(ms * 1000);
        host.push_back(std::chrono::duration<float, std::micro>(t1 - t0).count());
        CK(cudaStreamSynchronize(copies));
      }
      std::sort(gpu.begin(), gpu.end());
      std::sort(host.begin(), host.end());
      std::printf(
          "%-26s copies in flight: %s  GPU median %8.1f us (p90 %8.1f)  host call %7.1f us\n",
          names[kind], busy ? "4 x 10 MiB" : "none      ", gpu[30], gpu[54], host[30]);
    }
  return 0;
}
