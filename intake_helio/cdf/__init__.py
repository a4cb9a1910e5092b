"""room placeholder"""
