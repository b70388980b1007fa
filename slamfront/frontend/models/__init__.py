"""frontend/models"""
