// Every schema of the infaug operator library, declared in one place. Backends register kernels
// beside their code (cpu/*.cpp, cuda/*.cu); fake kernels and autograd live in infaug/ops.py.
#include <Python.h>
#include <torch/library.h>

#ifndef INFAUG_TORCH_VERSION
#error "INFAUG_TORCH_VERSION must be defined by the build (infaug/_build.py, used by setup.py and infaug/_extension.py)"
#endif

TORCH_LIBRARY(infaug, m) {
  m.def(
      "warp(Tensor x, Tensor theta_w, Tensor theta_b, int smooth=3, bool align_corners=False, "
      "str padding_mode='zeros') -> Tensor");
  m.def(
      "_warp_backward(Tensor grad_y, Tensor x, Tensor theta_w, Tensor theta_b, int smooth, "
      "bool align_corners, str padding_mode, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
  m.def(
      "augment(Tensor x, Tensor theta_w, Tensor theta_b, Tensor color_w, Tensor color_b, "
      "int smooth=3, bool align_corners=False, str padding_mode='zeros') -> Tensor");
  m.def(
      "_augment_backward(Tensor grad_out, Tensor x, Tensor theta_w, Tensor theta_b, Tensor color_w, "
      "Tensor color_b, int smooth, bool align_corners, str padding_mode, bool[5] output_mask) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "influence(Tensor features, Tensor labels, Tensor weight, Tensor? bias, Tensor s_weight, "
      "Tensor? s_bias) -> (Tensor scores, Tensor projections)");
  m.def(
      "_influence_backward(Tensor grad_scores, Tensor projections, Tensor labels, Tensor weight, "
      "Tensor? bias, Tensor s_weight, Tensor? s_bias) -> Tensor");
}

// A plain Python module: importing infaug._C loads this library and runs the registrations above.
// It records the torch it was built against so that infaug can refuse a mismatched build.
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "infaug's compiled operators", -1, nullptr};
  PyObject* m = PyModule_Create(&module);
  if (m == nullptr) return nullptr;
  PyModule_AddStringConstant(m, "torch_version", INFAUG_TORCH_VERSION);
#ifdef INFAUG_WITH_CUDA
  PyModule_AddIntConstant(m, "with_cuda", 1);
#else
  PyModule_AddIntConstant(m, "with_cuda", 0);
#endif
  return m;
}
