"""The tokens page's form; every field error carries a stable code (shown as data-code)."""
from django import forms

MAX_EXPIRY_DAYS = 3650
MAX_NAME_LENGTH = 100


class TokenForm(forms.Form):
    """Create a token: a name to tell it apart, and optionally how many days it lives."""
    # No max_length on the field: its own error would carry Django's code, not the contract's.
    name = forms.CharField(required=False)
    expires_in_days = forms.CharField(required=False)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name or len(name) > MAX_NAME_LENGTH:
            raise forms.ValidationError("Name the token (what will use it), up to 100 characters.",
                                        code="invalid_token_name")
        return name

    def clean_expires_in_days(self):
        value = self.cleaned_data["expires_in_days"].strip()
        if not value:
            return None
        if not value.isdigit() or not 1 <= int(value) <= MAX_EXPIRY_DAYS:
            raise forms.ValidationError(
                "Expiry is a whole number of days from 1 to %d, or empty for none." % MAX_EXPIRY_DAYS,
                code="invalid_expiry")
        return int(value)

    def coded_errors(self):
        """(field, code, message) of each field in error."""
        return [(field, errors.as_data()[0].code, errors[0]) for field, errors in self.errors.items()]
