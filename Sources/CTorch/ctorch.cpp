// libtorch shim: every entry point catches all C++ exceptions and reports them
// through ctorch_error, so nothing unwinds into Swift or aborts the process.
#include "ctorch.h"

#include <torch/script.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/autograd/autograd.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

struct ctorch_model {
    // Frozen (weights inlined as constants) with `features` and `head` kept; `forward` and `features`
    // optimised for inference (oneDNN). `head` is frozen but not optimised: autograd still flows
    // through it to the activations, which is all Grad-CAM needs. The unfrozen original is not kept,
    // so the weights live in memory once.
    torch::jit::Module frozen;
};

namespace {

void set_error(ctorch_error *err, const char *what) {
    if (err == nullptr) return;
    std::string message(what);
    // A TorchScript traceback can be kilobytes long; its last line names the actual error.
    if (message.find("Traceback of TorchScript") != std::string::npos) {
        size_t end = message.find_last_not_of(" \n");
        size_t start = message.rfind('\n', end);
        if (end != std::string::npos)
            message = message.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
    }
    std::snprintf(err->message, sizeof err->message, "%s", message.c_str());
}

// Runs body, turning any exception into an error message and a non-zero status.
template <typename Body>
int32_t guarded(ctorch_error *err, Body &&body) {
    try {
        body();
        return 0;
    } catch (const c10::Error &e) {
        set_error(err, e.what_without_backtrace());
    } catch (const std::bad_alloc &) {
        set_error(err, "out of memory in libtorch");
    } catch (const std::exception &e) {
        set_error(err, e.what());
    } catch (...) {
        set_error(err, "unknown C++ exception in libtorch");
    }
    return 1;
}

double ms_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

float *copy_out(const at::Tensor &t) {
    at::Tensor c = t.to(at::kFloat).contiguous();
    const size_t n = static_cast<size_t>(c.numel());
    float *buffer = static_cast<float *>(std::malloc(std::max<size_t>(n, 1) * sizeof(float)));
    if (buffer == nullptr) throw std::bad_alloc();
    std::memcpy(buffer, c.data_ptr<float>(), n * sizeof(float));
    return buffer;
}

at::Tensor input_tensor(const float *input, const int64_t *shape, int32_t rank) {
    if (input == nullptr || shape == nullptr || rank <= 0 || rank > 8)
        throw std::invalid_argument("input tensor needs data and a shape of rank 1...8");
    std::vector<int64_t> sizes(shape, shape + rank);
    for (int64_t s : sizes)
        if (s <= 0) throw std::invalid_argument("input tensor has a non-positive dimension");
    // from_blob does not copy; the caller's buffer outlives the call and is never written.
    return torch::from_blob(const_cast<float *>(input), sizes, torch::kFloat);
}

at::Tensor dense(const c10::IValue &value, const char *what) {
    if (!value.isTensor()) throw std::runtime_error(std::string(what) + " did not return a tensor");
    at::Tensor t = value.toTensor();
    return t.is_mkldnn() ? t.to_dense() : t;
}

at::Tensor logsumexp_of(const at::Tensor &logits, const int32_t *indices, int32_t count, int64_t classes) {
    std::vector<int64_t> idx;
    idx.reserve(static_cast<size_t>(count));
    for (int32_t i = 0; i < count; ++i) {
        if (indices[i] < 0 || indices[i] >= classes)
            throw std::out_of_range("Grad-CAM target names class " + std::to_string(indices[i]) +
                                    " but the model has " + std::to_string(classes) + " outputs");
        idx.push_back(indices[i]);
    }
    at::Tensor picked = logits.index_select(0, torch::tensor(idx, torch::kLong));
    return count == 1 ? picked[0] : torch::logsumexp(picked, 0);
}

}  // namespace

extern "C" {

int32_t ctorch_set_num_threads(int32_t threads) {
    if (threads > 0) at::set_num_threads(threads);
    return at::get_num_threads();
}

int32_t ctorch_get_num_threads(void) { return at::get_num_threads(); }

ctorch_model *ctorch_model_load(const char *path, ctorch_error *err) {
    std::unique_ptr<ctorch_model> model;
    int32_t status = guarded(err, [&] {
        if (path == nullptr) throw std::invalid_argument("no model path given");
        torch::jit::Module frozen;
        {
            torch::jit::Module module = torch::jit::load(path, torch::kCPU);
            for (const char *method : {"forward", "features", "head"})
                if (!module.find_method(method))
                    throw std::runtime_error(std::string("model has no `") + method +
                                             "` method (see the model contract in models/README.md)");
            module.eval();
            // Only activations need gradients; weights never do.
            for (at::Tensor p : module.parameters()) p.set_requires_grad(false);
            // Without freezing + oneDNN optimisation, libtorch's single-thread convolution is many times slower.
            frozen = torch::jit::freeze(module, std::vector<std::string>{"features", "head"});
        }  // the loaded original goes here, before optimising makes a third copy of the weights
        frozen = torch::jit::optimize_for_inference(frozen, {"features"});
        model.reset(new ctorch_model{frozen});
    });
    return status == 0 ? model.release() : nullptr;
}

void ctorch_model_free(ctorch_model *model) { delete model; }

int32_t ctorch_model_run(ctorch_model *model,
                         const float *input, const int64_t *shape, int32_t rank,
                         const ctorch_cam_target *targets, int32_t target_count,
                         ctorch_result *out, ctorch_error *err) {
    if (out == nullptr) {
        set_error(err, "no result struct given");
        return 1;
    }
    std::memset(out, 0, sizeof *out);
    int32_t status = guarded(err, [&] {
        if (model == nullptr) throw std::invalid_argument("no model given");
        if (target_count < 0 || (target_count > 0 && targets == nullptr))
            throw std::invalid_argument("bad Grad-CAM target list");
        at::Tensor x = input_tensor(input, shape, rank);

        auto t0 = std::chrono::steady_clock::now();
        at::Tensor activations;
        {
            torch::NoGradGuard no_grad;
            activations = dense(model->frozen.get_method("features")({x}), "features").contiguous();
        }
        out->features_ms = ms_since(t0);
        if (activations.dim() != 4 || activations.size(0) != 1)
            throw std::runtime_error("features must return [1, C, H, W] activations, got " +
                                     std::to_string(activations.dim()) + " dimensions");

        auto t1 = std::chrono::steady_clock::now();
        const bool want_cam = target_count > 0;
        activations.set_requires_grad(want_cam);
        at::Tensor logits;
        {
            torch::AutoGradMode grad_mode(want_cam);
            logits = dense(model->frozen.get_method("head")({activations}), "head");
        }
        logits = logits.reshape({-1});
        out->head_ms = ms_since(t1);
        const int64_t classes = logits.numel();

        auto t2 = std::chrono::steady_clock::now();
        std::vector<at::Tensor> cams;
        cams.reserve(static_cast<size_t>(target_count));
        for (int32_t i = 0; i < target_count; ++i) {
            const ctorch_cam_target &target = targets[i];
            at::Tensor score;
            if (target.explain_top_class) {
                score = logits[logits.detach().argmax().item<int64_t>()];
            } else {
                if (target.positive_count <= 0 || target.positive == nullptr)
                    throw std::invalid_argument("Grad-CAM target needs at least one positive class");
                score = logsumexp_of(logits, target.positive, target.positive_count, classes);
            }
            if (!target.explain_top_class && target.negative_count > 0)
                score = score - logsumexp_of(logits, target.negative, target.negative_count, classes);
            const bool last = i == target_count - 1;
            at::Tensor grad = torch::autograd::grad({score}, {activations}, {}, /*retain_graph=*/!last)[0];
            torch::NoGradGuard no_grad;
            at::Tensor weights = grad.mean({2, 3}, /*keepdim=*/true);          // [1, C, 1, 1]
            cams.push_back(torch::relu((weights * activations.detach()).sum(1))[0]);  // [H, W]
        }
        out->gradcam_ms = ms_since(t2);

        out->logits = copy_out(logits.detach());
        out->logit_count = classes;
        if (!cams.empty()) {
            out->cams = copy_out(torch::stack(cams));
            out->cam_count = target_count;
            out->cam_height = activations.size(2);
            out->cam_width = activations.size(3);
        }
    });
    if (status != 0) ctorch_result_free(out);
    return status;
}

void ctorch_result_free(ctorch_result *result) {
    if (result == nullptr) return;
    std::free(result->logits);
    std::free(result->cams);
    std::memset(result, 0, sizeof *result);
}

int32_t ctorch_model_bench_forward(ctorch_model *model,
                                   const float *input, const int64_t *shape, int32_t rank,
                                   int32_t iterations, double *median_ms, ctorch_error *err) {
    return guarded(err, [&] {
        if (model == nullptr || median_ms == nullptr || iterations <= 0)
            throw std::invalid_argument("bench needs a model, a result pointer and iterations > 0");
        at::Tensor x = input_tensor(input, shape, rank);
        torch::InferenceMode inference;
        std::vector<double> times;
        for (int32_t i = 0; i < iterations; ++i) {
            auto t0 = std::chrono::steady_clock::now();
            at::Tensor y = dense(model->frozen.forward({x}), "forward");
            times.push_back(ms_since(t0));
        }
        std::sort(times.begin(), times.end());
        *median_ms = times[times.size() / 2];
    });
}

}  // extern "C"
