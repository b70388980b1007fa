"""frontend/runtime"""
