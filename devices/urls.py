"""URLs of the device blade."""


app_name = "devices"
urlpatterns: list = []
