"""Routing to the best agent: skills, priorities, relaxation, reservations, queue statistics."""
