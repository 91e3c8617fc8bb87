r"""Batch normalization written from scratch, for reading.

Batch normalization was introduced by Ioffe & Szegedy (2015),
`Batch Normalization: Accelerating Deep Network Training by Reducing Internal
Covariate Shift <https://arxiv.org/abs/1502.03167>`__.  For every channel
:math:`c` it standardizes the activations with statistics taken over the
mini-batch and then applies a learnable scale :math:`\gamma_c` and shift
:math:`\beta_c`:

.. math::

    \mu_c = \frac{1}{m} \sum_i x_{i,c}, \qquad
    \sigma^2_c = \frac{1}{m} \sum_i (x_{i,c} - \mu_c)^2, \qquad
    \hat{x}_{i,c} = \frac{x_{i,c} - \mu_c}{\sqrt{\sigma^2_c + \epsilon}}, \qquad
    y_{i,c} = \gamma_c \hat{x}_{i,c} + \beta_c

where :math:`i` runs over the :math:`m` values of channel :math:`c` in the
batch (every position of every sample).

How this file is organised (in the style of *Dive into Deep Learning*):

* the maths lives in small pure functions (:func:`channel_reduce_dims`,
  :func:`batch_norm_steps`, :func:`batch_norm`), using only basic tensor
  operations (``mean``, ``sqrt``, arithmetic); no ``torch`` normalization op is
  called anywhere in this file;
* the modules (:class:`BatchNorm1d`, :class:`BatchNorm2d`) only do bookkeeping:
  they own the parameters and buffers and decide which statistics to use.

Everything is a drop-in replacement for the PyTorch equivalents
(``torch.nn.functional.batch_norm``, ``torch.nn.BatchNorm1d``,
``torch.nn.BatchNorm2d``): same signatures, same parameter and buffer names
(so ``state_dict`` s load both ways), same numbers, same errors.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import Tensor, nn

__all__ = [
    "BatchNorm1d",
    "BatchNormBase",
    "BatchNorm2d",
    "BatchNormSteps",
    "batch_norm",
    "batch_norm_steps",
    "channel_reduce_dims",
]


# --------------------------------------------------------------------------
# Small helpers: shapes, dtypes and argument checks
# --------------------------------------------------------------------------


def channel_reduce_dims(input: Tensor) -> tuple[int, ...]:
    r"""Return the dimensions batch normalization averages over.

    Channels live in dimension 1; every other dimension is reduced:
    ``(0,)`` for :math:`(N, C)`, ``(0, 2)`` for :math:`(N, C, L)`,
    ``(0, 2, 3)`` for :math:`(N, C, H, W)`.

    Example::

        >>> channel_reduce_dims(torch.zeros(8, 3, 5, 5))
        (0, 2, 3)
    """
    return (0, *range(2, input.dim()))


def _values_per_channel(size: torch.Size) -> int:
    # m = N * L or N * H * W: how many numbers each channel's statistics use.
    return size[0] * math.prod(size[2:])


def _per_channel(stat: Tensor, ndim: int) -> Tensor:
    # Reshape a (C,) vector to (1, C, 1, ..., 1) so that it broadcasts
    # against an input with ``ndim`` dimensions.
    return stat.reshape(1, -1, *([1] * (ndim - 2)))


def _compute_dtype(input: Tensor) -> torch.dtype:
    # Like PyTorch, do the arithmetic for float16/bfloat16 inputs in float32.
    if input.dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    return input.dtype


def _check_input(input: Tensor) -> None:
    if input.dim() < 2:
        raise ValueError(
            f"batch_norm expects an input of shape (N, C, *) with at least 2 dimensions (got {input.dim()}D input)"
        )
    if not input.is_floating_point():
        raise NotImplementedError(f'"batch_norm" not implemented for {input.dtype}')


def _check_batch_size(input: Tensor) -> None:
    # Same condition and message as torch.nn.functional._verify_batch_size.
    if _values_per_channel(input.size()) == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.size()}")


def _check_eps(eps: float, training: bool) -> None:
    # Same rule and messages as torch.nn.functional.batch_norm (torch 2.13).
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")


def _check_channels(name: str, tensor: Tensor | None, num_channels: int) -> None:
    if tensor is not None and tensor.numel() != num_channels:
        raise RuntimeError(f"{name} should contain {num_channels} elements not {tensor.numel()}")


# --------------------------------------------------------------------------
# The maths
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BatchNormSteps:
    r"""Every intermediate of one training-mode batch-norm forward pass.

    Returned by :func:`batch_norm_steps`. Per-channel statistics have shape
    :math:`(C,)`; ``x_hat`` and ``output`` have the shape of the input.

    Attributes:
        reduce_dims: dimensions averaged over, e.g. ``(0, 2, 3)`` for 4-D input.
        m: number of values per channel (``N``, ``N*L`` or ``N*H*W``).
        mean: batch mean :math:`\mu_c`, shape :math:`(C,)`.
        var_biased: :math:`\frac{1}{m}\sum_i (x_i-\mu_c)^2`, used to normalize.
        var_unbiased: :math:`\frac{m}{m-1}` ``var_biased``, the value that goes
            into the running variance.
        std: :math:`\sqrt{\text{var\_biased} + \epsilon}`, shape :math:`(C,)`.
        x_hat: normalized input :math:`(x - \mu_c) / \text{std}_c`.
        output: :math:`\gamma_c \hat{x} + \beta_c` (in the input's dtype).
    """

    reduce_dims: tuple[int, ...]
    m: int
    mean: Tensor
    var_biased: Tensor
    var_unbiased: Tensor
    std: Tensor
    x_hat: Tensor
    output: Tensor


def batch_norm_steps(
    x: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> BatchNormSteps:
    r"""Run a training-mode batch normalization and keep every intermediate.

    This is the maths of Ioffe & Szegedy (2015), Algorithm 1, one line per
    step:

    .. math::

        \mu_c = \frac{1}{m}\sum_i x_{i,c} \qquad
        \sigma^2_c = \frac{1}{m}\sum_i (x_{i,c}-\mu_c)^2 \qquad
        \hat{x}_{i,c} = \frac{x_{i,c}-\mu_c}{\sqrt{\sigma^2_c+\epsilon}} \qquad
        y_{i,c} = \gamma_c \hat{x}_{i,c} + \beta_c

    Note:
        Biased vs unbiased variance: the output is normalized with the
        *biased* variance (divide by :math:`m`), which is what the batch
        really has. The *unbiased* variance :math:`\frac{m}{m-1}\sigma^2_c`
        (divide by :math:`m-1`) is also returned because it is the one that
        PyTorch (and the paper, for inference) feed into the running
        variance.

    Note:
        For ``float16``/``bfloat16`` inputs the statistics, ``std`` and
        ``x_hat`` are computed in ``float32``; ``output`` is cast back to the
        input dtype, as PyTorch does.

    Args:
        x: input of shape :math:`(N, C)`, :math:`(N, C, L)` or
            :math:`(N, C, H, W)` (any :math:`(N, C, *)` works).
        weight: :math:`\gamma`, shape :math:`(C,)`; ``None`` means 1.
        bias: :math:`\beta`, shape :math:`(C,)`; ``None`` means 0.
        eps: added to the variance before the square root; must be > 0.

    Returns:
        A frozen :class:`BatchNormSteps`.

    Raises:
        ValueError: if a channel has only one value (:math:`m = 1`; the
            unbiased variance would divide by zero) or ``eps <= 0``.

    Example::

        >>> x = torch.tensor([[1.0, 10.0], [3.0, 30.0]])  # N=2, C=2
        >>> s = batch_norm_steps(x)
        >>> s.reduce_dims, s.m
        ((0,), 2)
        >>> s.mean, s.var_biased, s.var_unbiased
        (tensor([ 2., 20.]), tensor([  1., 100.]), tensor([  2., 200.]))
        >>> s.x_hat.round(decimals=3)
        tensor([[-1., -1.],
                [ 1.,  1.]])
    """
    _check_input(x)
    _check_batch_size(x)
    if x.numel() == 0:
        raise ValueError(f"batch_norm_steps needs a non-empty input, got input size {x.size()}")
    _check_eps(eps, training=True)
    _check_channels("weight", weight, x.shape[1])
    _check_channels("bias", bias, x.shape[1])

    dtype = _compute_dtype(x)
    xc = x.to(dtype)
    dims = channel_reduce_dims(x)
    m = _values_per_channel(x.size())

    # 1. mini-batch mean, one number per channel
    mean = xc.mean(dim=dims)
    # 2. mini-batch variance (biased: divide by m); two passes for accuracy
    centered = xc - _per_channel(mean, x.dim())
    var_biased = (centered * centered).mean(dim=dims)
    #    unbiased version (divide by m - 1), only used for the running average
    var_unbiased = var_biased * (m / (m - 1))
    # 3. normalize
    std = torch.sqrt(var_biased + eps)
    x_hat = centered / _per_channel(std, x.dim())
    # 4. scale and shift
    output = _scale_and_shift(x_hat, weight, bias).to(x.dtype)

    return BatchNormSteps(
        reduce_dims=dims,
        m=m,
        mean=mean,
        var_biased=var_biased,
        var_unbiased=var_unbiased,
        std=std,
        x_hat=x_hat,
        output=output,
    )


def _scale_and_shift(x_hat: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    # y = gamma * x_hat + beta, with gamma = 1 / beta = 0 when not given.
    y = x_hat
    if weight is not None:
        y = y * _per_channel(weight.to(x_hat.dtype), x_hat.dim())
    if bias is not None:
        y = y + _per_channel(bias.to(x_hat.dtype), x_hat.dim())
    return y


def _update_running_(running: Tensor, batch_stat: Tensor, momentum: float) -> None:
    # running <- (1 - momentum) * running + momentum * batch_stat, in place.
    # No gradient flows into the running statistics.
    with torch.no_grad():
        running.copy_((1 - momentum) * running + momentum * batch_stat.to(running.dtype))


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    r"""Apply batch normalization to each channel (dimension 1) of ``input``.

    Same signature and behaviour as :func:`torch.nn.functional.batch_norm`,
    written with plain tensor arithmetic. Method from Ioffe & Szegedy (2015),
    `Batch Normalization: Accelerating Deep Network Training by Reducing
    Internal Covariate Shift <https://arxiv.org/abs/1502.03167>`__:

    .. math::

        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} * \gamma + \beta

    The statistics are taken per channel over every other dimension: over
    :math:`N` for :math:`(N, C)`, over :math:`N, L` for :math:`(N, C, L)`, over
    :math:`N, H, W` for :math:`(N, C, H, W)`.

    * ``training=True``: :math:`\mathrm{E}[x]` and :math:`\mathrm{Var}[x]` are
      the statistics of this batch (see :func:`batch_norm_steps`). If
      ``running_mean``/``running_var`` are given they are updated **in place**.
    * ``training=False``: ``running_mean`` and ``running_var`` are used instead
      (both are then required), so the output of one sample does not depend on
      the rest of the batch.

    Note:
        Biased vs unbiased variance: the output is normalized with the biased
        batch variance :math:`\frac{1}{m}\sum (x-\mu)^2`, but the running
        variance is updated with the unbiased one, :math:`\frac{m}{m-1}`
        times larger, where :math:`m` is the number of values per channel.

    Note:
        The momentum convention is PyTorch's, not the optimizer one:

        .. math::

            \text{running} \leftarrow (1 - \text{momentum}) \times \text{running}
            + \text{momentum} \times \text{batch\_stat}

        so ``momentum=0`` freezes the running statistics and ``momentum=1``
        replaces them by the latest batch's. ``momentum=None`` is rejected with
        a ``TypeError`` (as PyTorch's functional does); the cumulative average
        is implemented by the modules, which pass ``1 / num_batches_tracked``.

    Args:
        input: tensor of shape :math:`(N, C, *)`.
        running_mean: running mean, shape :math:`(C,)`, or ``None``.
        running_var: running variance, shape :math:`(C,)`, or ``None``.
        weight: :math:`\gamma`, shape :math:`(C,)`, or ``None`` (= 1).
        bias: :math:`\beta`, shape :math:`(C,)`, or ``None`` (= 0).
        training: use batch statistics (and update the running ones).
        momentum: weight of the new batch in the running averages.
        eps: added to the variance for numerical stability; must be > 0 in
            training and >= 0 otherwise.

    Shape:
        - Input: :math:`(N, C)`, :math:`(N, C, L)` or :math:`(N, C, H, W)`
        - Output: same shape as the input

    Raises:
        ValueError: ``Expected more than 1 value per channel when training``
            when :math:`m = 1` in training; bad ``eps``; fewer than 2 dims;
            only one of the running statistics given in training.
        RuntimeError: running statistics missing in eval mode, or a
            per-channel tensor with the wrong number of elements.
        TypeError: ``momentum=None``.

    Example::

        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at 0x...>
        >>> x = torch.randn(16, 3, 8, 8) * 5 + 2
        >>> running_mean, running_var = torch.zeros(3), torch.ones(3)
        >>> y = batch_norm(x, running_mean, running_var, training=True)
        >>> y.mean(dim=(0, 2, 3)).abs().max() < 1e-5
        tensor(True)
        >>> # updated in place: 0.9 * 0 + 0.1 * batch mean
        >>> torch.allclose(running_mean, 0.1 * x.mean(dim=(0, 2, 3)))
        True
    """
    _check_input(input)
    if momentum is None:
        raise TypeError(
            "batch_norm(): momentum must be a float, not None (the cumulative "
            "average of momentum=None is implemented by the BatchNorm modules)"
        )
    if training:
        _check_batch_size(input)
    _check_eps(eps, training)
    if training:
        if (running_mean is None) != (running_var is None):
            raise ValueError("running_mean and running_var must either both be None or neither be None")
    else:
        if running_mean is None:
            raise RuntimeError("running_mean must be defined in evaluation mode")
        if running_var is None:
            raise RuntimeError("running_var must be defined in evaluation mode")
    num_channels = input.shape[1]
    for name, tensor in (
        ("weight", weight),
        ("bias", bias),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        _check_channels(name, tensor, num_channels)

    if input.numel() == 0:
        # Nothing to normalize; like PyTorch, leave the running stats alone.
        return input.clone()

    if training:
        steps = batch_norm_steps(input, weight, bias, eps)
        if running_mean is not None and running_var is not None:
            _update_running_(running_mean, steps.mean, momentum)
            _update_running_(running_var, steps.var_unbiased, momentum)
        return steps.output

    # Evaluation: the same formula with the stored statistics.
    dtype = _compute_dtype(input)
    mean = _per_channel(running_mean.to(dtype), input.dim())
    std = _per_channel(torch.sqrt(running_var.to(dtype) + eps), input.dim())
    x_hat = (input.to(dtype) - mean) / std
    return _scale_and_shift(x_hat, weight, bias).to(input.dtype)


# --------------------------------------------------------------------------
# The modules: bookkeeping only
# --------------------------------------------------------------------------


class BatchNormBase(nn.Module):
    r"""Shared code of :class:`BatchNorm1d` and :class:`BatchNorm2d`.

    Owns :math:`\gamma` (``weight``) and :math:`\beta` (``bias``) and the
    buffers ``running_mean``, ``running_var`` and ``num_batches_tracked``, with
    the same names, shapes, dtypes and initial values as PyTorch, so state
    dicts are interchangeable with ``torch.nn.BatchNorm1d``/``2d``.
    """

    # Version 2 of PyTorch's batch-norm state dict added num_batches_tracked.
    _version = 2
    __constants__: ClassVar[list[str]] = [
        "track_running_stats",
        "momentum",
        "eps",
        "num_features",
        "affine",
    ]

    num_features: int
    eps: float
    momentum: float | None
    affine: bool
    track_running_stats: bool

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats

        if affine:
            self.weight = nn.Parameter(torch.empty(num_features, **factory_kwargs))
            if bias:
                self.bias = nn.Parameter(torch.empty(num_features, **factory_kwargs))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory_kwargs))
            self.register_buffer("running_var", torch.ones(num_features, **factory_kwargs))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Set running_mean to 0, running_var to 1 and num_batches_tracked to 0."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics and set gamma to 1 and beta to 0."""
        self.reset_running_stats()
        if self.affine:
            with torch.no_grad():
                self.weight.fill_(1)
                if self.bias is not None:
                    self.bias.zero_()

    def _check_input_dim(self, input: Tensor) -> None:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def _load_from_state_dict(
        self,
        state_dict,
        prefix,
        local_metadata,
        strict,
        missing_keys,
        unexpected_keys,
        error_msgs,
    ) -> None:
        # State dicts saved before num_batches_tracked existed (version < 2)
        # lack that key; keep the current counter instead of failing.
        version = local_metadata.get("version", None)
        key = prefix + "num_batches_tracked"
        legacy = version is None or version < 2
        if legacy and self.track_running_stats and key not in state_dict:
            state_dict[key] = (
                self.num_batches_tracked
                if self.num_batches_tracked is not None and self.num_batches_tracked.device != torch.device("meta")
                else torch.tensor(0, dtype=torch.long)
            )
        super()._load_from_state_dict(
            state_dict,
            prefix,
            local_metadata,
            strict,
            missing_keys,
            unexpected_keys,
            error_msgs,
        )

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)

        # Which weight does the new batch get in the running averages?
        # momentum=None means a cumulative (equal-weight) average: after n
        # batches the factor is 1/n, so every batch counts the same.
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)

        # Batch statistics in training, and in eval when nothing was tracked.
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        # Hand over the buffers only when they are to be used or updated.
        pass_buffers = not self.training or self.track_running_stats
        return batch_norm(
            input,
            self.running_mean if pass_buffers else None,
            self.running_var if pass_buffers else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )


class BatchNorm1d(BatchNormBase):
    r"""Batch normalization over a 2D or 3D input; drop-in for ``torch.nn.BatchNorm1d``.

    Method described in Ioffe & Szegedy (2015), `Batch Normalization:
    Accelerating Deep Network Training by Reducing Internal Covariate Shift
    <https://arxiv.org/abs/1502.03167>`__:

    .. math::

        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} * \gamma + \beta

    Mean and variance are computed per channel over :math:`N` (2D input) or
    :math:`N, L` (3D input). :math:`\gamma` and :math:`\beta` are learnable
    vectors of size :math:`C`, initialized to 1 and 0.

    In training mode the batch statistics are used, and (if
    ``track_running_stats``) running estimates are updated; in eval mode the
    running estimates are used. Without ``track_running_stats`` the batch
    statistics are used in both modes. See :func:`batch_norm` for the maths.

    Note:
        Biased vs unbiased variance: the output uses the biased batch variance
        (``correction=0``); the running variance stores the unbiased one
        (``correction=1``), i.e. :math:`\frac{m}{m-1}` times larger.

    Note:
        ``momentum`` is not the optimizer momentum. The update is
        :math:`\hat{x}_\text{new} = (1 - \text{momentum}) \hat{x} +
        \text{momentum}\, x_t`. With ``momentum=None`` the running statistics
        are the plain average of all batches seen so far (factor
        ``1 / num_batches_tracked``).

    Args:
        num_features: number of channels :math:`C`.
        eps: added to the variance for numerical stability. Default: 1e-5
        momentum: weight of each new batch in the running statistics, or
            ``None`` for a cumulative moving average. Default: 0.1
        affine: learn :math:`\gamma` and :math:`\beta`. Default: ``True``
        track_running_stats: keep running statistics (buffers
            ``running_mean``, ``running_var``, ``num_batches_tracked``); if
            ``False`` they are ``None``. Default: ``True``
        device, dtype: where and how to allocate parameters and buffers.
        bias: (keyword-only) learn :math:`\beta` when ``affine``. Default: ``True``

    Shape:
        - Input: :math:`(N, C)` or :math:`(N, C, L)`
        - Output: same shape as the input

    Example::

        >>> bn = BatchNorm1d(4)
        >>> y = bn(torch.randn(32, 4))
        >>> sorted(bn.state_dict())
        ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
        >>> bn
        BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() != 2 and input.dim() != 3:
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")


class BatchNorm2d(BatchNormBase):
    r"""Batch normalization over a 4D input; drop-in for ``torch.nn.BatchNorm2d``.

    Method described in Ioffe & Szegedy (2015), `Batch Normalization:
    Accelerating Deep Network Training by Reducing Internal Covariate Shift
    <https://arxiv.org/abs/1502.03167>`__:

    .. math::

        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} * \gamma + \beta

    Mean and variance are computed per channel over :math:`N, H, W` (every
    pixel of every image: the convolutional variant of the paper, section
    3.2). Everything else is as in :class:`BatchNorm1d`, including the notes
    on biased vs unbiased variance and on the momentum convention.

    Args:
        num_features: number of channels :math:`C`.
        eps: added to the variance for numerical stability. Default: 1e-5
        momentum: weight of each new batch in the running statistics, or
            ``None`` for a cumulative moving average. Default: 0.1
        affine: learn :math:`\gamma` and :math:`\beta`. Default: ``True``
        track_running_stats: keep running statistics. Default: ``True``
        device, dtype: where and how to allocate parameters and buffers.
        bias: (keyword-only) learn :math:`\beta` when ``affine``. Default: ``True``

    Shape:
        - Input: :math:`(N, C, H, W)`
        - Output: same shape as the input

    Example::

        >>> bn = BatchNorm2d(3, momentum=None)
        >>> _ = bn(torch.randn(8, 3, 5, 5))
        >>> bn.num_batches_tracked
        tensor(1)
        >>> bn.eval()(torch.randn(2, 3, 5, 5)).shape
        torch.Size([2, 3, 5, 5])
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() != 4:
            raise ValueError(f"expected 4D input (got {input.dim()}D input)")
