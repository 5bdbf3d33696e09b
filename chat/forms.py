"""Forms of the plain pages."""
from django import forms
from django.utils.text import slugify

from .models import Room


class RoomForm(forms.Form):
    """Create a room from a name (its slug comes from the name), public or private."""
    name = forms.CharField(max_length=100)
    private = forms.BooleanField(required=False)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        slug = slugify(name)[:50]
        if not slug:
            raise forms.ValidationError("Use at least one letter or digit.")
        if Room.objects.filter(slug=slug).exists():
            raise forms.ValidationError("A room called %s exists already." % slug)
        self.cleaned_data["slug"] = slug
        return name
