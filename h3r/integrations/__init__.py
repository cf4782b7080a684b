"""Adapters that plug h3r into other frameworks. Each is imported on its own, never from here:

    mmpose   ``import h3r.integrations.mmpose`` registers the codec ``H3RHeatmap`` and the loss
             ``H3RSpatialCELoss`` in mmpose 1.x's registries (config:
             ``custom_imports=dict(imports=['h3r.integrations.mmpose'])``).
"""
