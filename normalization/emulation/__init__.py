"""The emulation stage: what pixelgate does itself when a model cannot, one module per capability.

In the order :class:`normalization.pipeline.Gateway` runs them after planning:

1. :mod:`~normalization.emulation.fanout`: count fan-out, ``n`` beyond the model's native maximum;
2. :mod:`~normalization.emulation.exact_size`: an exact ``size`` the model's control cannot give
   (bounded by the pixel caps at planning time);
3. :mod:`~normalization.emulation.output_format`: ``output_format`` and ``output_compression``;
4. :mod:`~normalization.emulation.response_format`: ``response_format`` (inline or hosted, through
   :mod:`normalization.hosting`).

Each module has a pure planning part, used by the rule engine, and a part that does the work. All
Pillow work runs in the shared :class:`core.image_workers.ImageWorkers` pool.
"""
