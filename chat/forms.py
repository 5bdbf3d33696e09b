"""Forms of the plain pages."""
from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.core.validators import MaxLengthValidator
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


class SignupForm(UserCreationForm):
    """UserCreationForm refusing a password over PASSWORD_MAX_LENGTH characters before any validator runs.

    Django 1.11's UserAttributeSimilarityValidator compares the whole password with each part of the
    username (CVE-2021-45115, fixed in 2.2.26): 0.55 s of a gunicorn worker per 100 KB. A field
    error on password1/password2 keeps clean_password2, which runs the validators, from being called.
    """
    PASSWORD_MAX_LENGTH = 4096

    def __init__(self, *args, **kwargs):
        super(SignupForm, self).__init__(*args, **kwargs)
        for name in ("password1", "password2"):
            field = self.fields[name]
            field.max_length = self.PASSWORD_MAX_LENGTH
            field.validators.append(MaxLengthValidator(self.PASSWORD_MAX_LENGTH))
            field.widget.attrs["maxlength"] = str(self.PASSWORD_MAX_LENGTH)
