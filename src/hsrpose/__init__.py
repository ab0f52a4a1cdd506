"""hsrpose: top-down multi-person 2D human pose estimation (SimpleBaseline, HSRNet, HSR-MSNet)."""

__version__ = "0.1.0"
