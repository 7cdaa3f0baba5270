"""What the job API's tests submit."""

PRODUCT = {"sku": "API-MUG-1", "title": "Stoneware Mug", "category": "kitchen",
           "images": ["https://cdn.example.com/mug.jpg"], "attributes": {"color": "red", "material": "stoneware"}}
