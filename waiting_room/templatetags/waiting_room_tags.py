from django import template

register = template.Library()


@register.filter
def wait_estimate(seconds: int) -> str:
    """A wait in words a shopper can plan with: `under a minute`, `about 4 min`, `about 1 h 20 min`."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"
