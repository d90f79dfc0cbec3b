// Group normalization on channels-last float32 tensors, CPU kernels.
//
// Wu & He, "Group Normalization", ECCV 2018, eq. 1-4, and their gradient
// in closed form (tfnode/layers/group_norm.py's module docstring). Each
// sample is one contiguous block `(positions, channels)`: its statistics
// take one sweep per moment and its output one more, all while the block
// is in cache, and samples are spread over TensorFlow's intra-op threads.
//
//   TfnodeGroupNorm(x, gamma, beta; groups, epsilon) -> y, mean, rstd
//   TfnodeGroupNormGrad(dy, x, gamma, mean, rstd; groups) -> dx, dgamma, dbeta
//
// `mean` and `rstd` (1 / sqrt(var + epsilon)) are `(batch, groups)`.

#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tfnode {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::InferenceContext;

// The layout of a `(batch, ..., channels)` input seen as `(batch,
// positions, channels)`, with `groups` groups of `per_group` channels.
struct Layout {
  int64_t batch, positions, channels, groups, per_group;
  int64_t sample_size() const { return positions * channels; }
  float group_count() const {
    return static_cast<float>(positions * per_group);
  }
};

// Checks `x` and a `(channels,)` parameter against `groups`; fills `layout`.
void ReadLayout(OpKernelContext* ctx, const Tensor& x, const Tensor& gamma,
                int64_t groups, Layout* layout) {
  OP_REQUIRES(ctx, x.dims() >= 2,
              InvalidArgument("x must have rank >= 2, got shape ",
                              x.shape().DebugString()));
  const int64_t channels = x.dim_size(x.dims() - 1);
  OP_REQUIRES(ctx, channels > 0 && channels % groups == 0,
              InvalidArgument("groups=", groups, " must divide the ",
                              channels, " channels"));
  OP_REQUIRES(ctx, gamma.dims() == 1 && gamma.dim_size(0) == channels,
              InvalidArgument("gamma must have shape (", channels,
                              ",), got ", gamma.shape().DebugString()));
  layout->batch = x.dim_size(0);
  layout->channels = channels;
  layout->positions =
      layout->batch == 0 ? 0 : x.NumElements() / (layout->batch * channels);
  layout->groups = groups;
  layout->per_group = channels / groups;
}

// Sums `rows` `(positions, channels)` over positions into `out` `(channels,)`.
void SumPositions(const float* rows, const Layout& l, float* out) {
  for (int64_t k = 0; k < l.channels; ++k) out[k] = 0.f;
  for (int64_t q = 0; q < l.positions; ++q) {
    const float* row = rows + q * l.channels;
    for (int64_t k = 0; k < l.channels; ++k) out[k] += row[k];
  }
}

// Sums a per-channel vector over the channels of group `j`.
float GroupSum(const float* per_channel, const Layout& l, int64_t j) {
  float total = 0.f;
  for (int64_t k = j * l.per_group; k < (j + 1) * l.per_group; ++k) {
    total += per_channel[k];
  }
  return total;
}

class GroupNormOp : public OpKernel {
 public:
  explicit GroupNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("groups", &groups_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& gamma = ctx->input(1);
    const Tensor& beta = ctx->input(2);
    Layout l;
    ReadLayout(ctx, x, gamma, groups_, &l);
    if (!ctx->status().ok()) return;
    OP_REQUIRES(ctx, beta.shape() == gamma.shape(),
                InvalidArgument("beta must have gamma's shape"));
    Tensor *y, *mean, *rstd;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    const TensorShape stats({l.batch, l.groups});
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, stats, &mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, stats, &rstd));
    const float* xs = x.flat<float>().data();
    const float* g = gamma.flat<float>().data();
    const float* b = beta.flat<float>().data();
    float* ys = y->flat<float>().data();
    float* means = mean->flat<float>().data();
    float* rstds = rstd->flat<float>().data();
    const float epsilon = epsilon_;
    auto normalize_samples = [&](int64_t first, int64_t last) {
      std::vector<float> sums(l.channels), centre(l.channels);
      std::vector<float> scale(l.channels), shift(l.channels);
      for (int64_t s = first; s < last; ++s) {
        const float* rows = xs + s * l.sample_size();
        float* out = ys + s * l.sample_size();
        float* mu = means + s * l.groups;
        float* r = rstds + s * l.groups;
        SumPositions(rows, l, sums.data());
        for (int64_t k = 0; k < l.channels; ++k) {
          const int64_t j = k / l.per_group;
          if (k % l.per_group == 0) {
            mu[j] = GroupSum(sums.data(), l, j) / l.group_count();
          }
          centre[k] = mu[j];
          sums[k] = 0.f;
        }
        // The variance from deviations, not E[x^2] - E[x]^2.
        for (int64_t q = 0; q < l.positions; ++q) {
          const float* row = rows + q * l.channels;
          for (int64_t k = 0; k < l.channels; ++k) {
            const float d = row[k] - centre[k];
            sums[k] += d * d;
          }
        }
        for (int64_t j = 0; j < l.groups; ++j) {
          r[j] = 1.f / std::sqrt(GroupSum(sums.data(), l, j) /
                                     l.group_count() +
                                 epsilon);
        }
        for (int64_t k = 0; k < l.channels; ++k) {
          scale[k] = r[k / l.per_group] * g[k];
          shift[k] = b[k] - centre[k] * scale[k];
        }
        for (int64_t q = 0; q < l.positions; ++q) {
          const float* row = rows + q * l.channels;
          float* o = out + q * l.channels;
          for (int64_t k = 0; k < l.channels; ++k) {
            o[k] = row[k] * scale[k] + shift[k];
          }
        }
      }
    };
    Shard(ctx, l, normalize_samples);
  }

  static void Shard(OpKernelContext* ctx, const Layout& l,
                    const std::function<void(int64_t, int64_t)>& work) {
    auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
    // Cost of one sample: about three sweeps of a few cycles an element.
    ::tensorflow::Shard(threads->num_threads, threads->workers, l.batch,
                        3 * l.sample_size(), work);
  }

 private:
  int64_t groups_;
  float epsilon_;
};

class GroupNormGradOp : public OpKernel {
 public:
  explicit GroupNormGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("groups", &groups_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy = ctx->input(0);
    const Tensor& x = ctx->input(1);
    const Tensor& gamma = ctx->input(2);
    const Tensor& mean = ctx->input(3);
    const Tensor& rstd = ctx->input(4);
    Layout l;
    ReadLayout(ctx, x, gamma, groups_, &l);
    if (!ctx->status().ok()) return;
    OP_REQUIRES(ctx, dy.shape() == x.shape(),
                InvalidArgument("dy must have x's shape ",
                                x.shape().DebugString(), ", got ",
                                dy.shape().DebugString()));
    const TensorShape stats({l.batch, l.groups});
    OP_REQUIRES(ctx, mean.shape() == stats && rstd.shape() == stats,
                InvalidArgument("mean and rstd must have shape ",
                                stats.DebugString()));
    Tensor *dx, *dgamma, *dbeta;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, gamma.shape(), &dgamma));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, gamma.shape(), &dbeta));
    const float* dys = dy.flat<float>().data();
    const float* xs = x.flat<float>().data();
    const float* g = gamma.flat<float>().data();
    const float* means = mean.flat<float>().data();
    const float* rstds = rstd.flat<float>().data();
    float* dxs = dx->flat<float>().data();
    // Each sample's share of dgamma and dbeta, summed after the sweep.
    std::vector<float> dgamma_parts(l.batch * l.channels);
    std::vector<float> dbeta_parts(l.batch * l.channels);
    auto differentiate_samples = [&](int64_t first, int64_t last) {
      std::vector<float> sum_dy(l.channels), sum_dy_x(l.channels);
      std::vector<float> dy_coeff(l.channels), x_coeff(l.channels);
      std::vector<float> offset(l.channels);
      for (int64_t s = first; s < last; ++s) {
        const float* d_rows = dys + s * l.sample_size();
        const float* rows = xs + s * l.sample_size();
        float* out = dxs + s * l.sample_size();
        for (int64_t k = 0; k < l.channels; ++k) {
          sum_dy[k] = 0.f;
          sum_dy_x[k] = 0.f;
        }
        for (int64_t q = 0; q < l.positions; ++q) {
          const float* d = d_rows + q * l.channels;
          const float* row = rows + q * l.channels;
          for (int64_t k = 0; k < l.channels; ++k) {
            sum_dy[k] += d[k];
            sum_dy_x[k] += d[k] * row[k];
          }
        }
        for (int64_t j = 0; j < l.groups; ++j) {
          const float mu = means[s * l.groups + j];
          const float r = rstds[s * l.groups + j];
          float mean_g = 0.f, mean_g_xhat = 0.f;
          for (int64_t k = j * l.per_group; k < (j + 1) * l.per_group; ++k) {
            // sum over positions of dy * (x - mu), for this channel.
            const float centred = sum_dy_x[k] - mu * sum_dy[k];
            dgamma_parts[s * l.channels + k] = centred * r;
            dbeta_parts[s * l.channels + k] = sum_dy[k];
            mean_g += g[k] * sum_dy[k];
            mean_g_xhat += g[k] * centred;
          }
          mean_g /= l.group_count();
          mean_g_xhat *= r / l.group_count();
          for (int64_t k = j * l.per_group; k < (j + 1) * l.per_group; ++k) {
            dy_coeff[k] = r * g[k];
            x_coeff[k] = -r * r * mean_g_xhat;
            offset[k] = r * (mu * r * mean_g_xhat - mean_g);
          }
        }
        for (int64_t q = 0; q < l.positions; ++q) {
          const float* d = d_rows + q * l.channels;
          const float* row = rows + q * l.channels;
          float* o = out + q * l.channels;
          for (int64_t k = 0; k < l.channels; ++k) {
            o[k] = d[k] * dy_coeff[k] + row[k] * x_coeff[k] + offset[k];
          }
        }
      }
    };
    GroupNormOp::Shard(ctx, l, differentiate_samples);
    float* dg = dgamma->flat<float>().data();
    float* db = dbeta->flat<float>().data();
    for (int64_t k = 0; k < l.channels; ++k) {
      dg[k] = 0.f;
      db[k] = 0.f;
    }
    for (int64_t s = 0; s < l.batch; ++s) {
      for (int64_t k = 0; k < l.channels; ++k) {
        dg[k] += dgamma_parts[s * l.channels + k];
        db[k] += dbeta_parts[s * l.channels + k];
      }
    }
  }

 private:
  int64_t groups_;
};

::absl::Status StatisticsShape(InferenceContext* c) {
  int64_t groups;
  TF_RETURN_IF_ERROR(c->GetAttr("groups", &groups));
  c->set_output(0, c->input(0));
  c->set_output(1, c->Matrix(c->Dim(c->input(0), 0), groups));
  c->set_output(2, c->Matrix(c->Dim(c->input(0), 0), groups));
  return ::absl::OkStatus();
}

::absl::Status GradientShape(InferenceContext* c) {
  c->set_output(0, c->input(1));
  c->set_output(1, c->input(2));
  c->set_output(2, c->input(2));
  return ::absl::OkStatus();
}

}  // namespace

REGISTER_OP("TfnodeGroupNorm")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Attr("groups: int >= 1")
    .Attr("epsilon: float")
    .Output("y: float")
    .Output("mean: float")
    .Output("rstd: float")
    .SetShapeFn(StatisticsShape);

REGISTER_OP("TfnodeGroupNormGrad")
    .Input("dy: float")
    .Input("x: float")
    .Input("gamma: float")
    .Input("mean: float")
    .Input("rstd: float")
    .Attr("groups: int >= 1")
    .Output("dx: float")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .SetShapeFn(GradientShape);

REGISTER_KERNEL_BUILDER(
    Name("TfnodeGroupNorm").Device(::tensorflow::DEVICE_CPU), GroupNormOp);
REGISTER_KERNEL_BUILDER(
    Name("TfnodeGroupNormGrad").Device(::tensorflow::DEVICE_CPU),
    GroupNormGradOp);

}  // namespace tfnode
