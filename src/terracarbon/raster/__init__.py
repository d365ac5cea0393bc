"""Rasters: validated opening, COG writing, the tiled prediction engine, zonal statistics."""
