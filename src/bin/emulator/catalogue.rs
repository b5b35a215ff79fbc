//! The built-in data realistic orders are drawn from: names, cities, streets, products,
//! payment and delivery details.

pub(crate) const CURRENCIES: [&str; 5] = ["USD", "EUR", "RUB", "KZT", "GBP"];

#[rustfmt::skip]
pub(crate) const FIRST_NAMES: &[&str] = &[
    "Ivan", "Anna", "Maria", "Alexei", "Olga", "Dmitry", "Elena", "Sergei", "Aigerim", "Nursultan",
    "John", "Emma", "Liam", "Sophie", "Lukas", "Mia", "Noah", "Chloe", "Yusuf", "Leila",
];
#[rustfmt::skip]
pub(crate) const LAST_NAMES: &[&str] = &[
    "Ivanov", "Petrova", "Smirnov", "Kuznetsova", "Popov", "Sokolova", "Nurlanov", "Akhmetova",
    "Smith", "Johnson", "Brown", "Muller", "Schmidt", "Dubois", "Martin", "Rossi", "Garcia",
    "Cohen", "Levi", "Novak",
];

pub(crate) struct City {
    pub(crate) name: &'static str,
    pub(crate) region: &'static str,
    /// Telephone country code.
    pub(crate) country_code: &'static str,
    pub(crate) locale: &'static str,
    pub(crate) currency: &'static str,
    pub(crate) zip_digits: usize,
}

const fn city(
    name: &'static str,
    region: &'static str,
    country_code: &'static str,
    locale: &'static str,
    currency: &'static str,
    zip_digits: usize,
) -> City {
    City {
        name,
        region,
        country_code,
        locale,
        currency,
        zip_digits,
    }
}

pub(crate) const CITIES: &[City] = &[
    city("Moscow", "Moscow", "7", "ru", "RUB", 6),
    city("Saint Petersburg", "Leningrad Oblast", "7", "ru", "RUB", 6),
    city("Kazan", "Tatarstan", "7", "ru", "RUB", 6),
    city("Novosibirsk", "Novosibirsk Oblast", "7", "ru", "RUB", 6),
    city("Almaty", "Almaty Region", "7", "kk", "KZT", 6),
    city("Astana", "Akmola Region", "7", "kk", "KZT", 6),
    city("London", "Greater London", "44", "en", "GBP", 0),
    city("Manchester", "Greater Manchester", "44", "en", "GBP", 0),
    city("Berlin", "Berlin", "49", "de", "EUR", 5),
    city("Munich", "Bavaria", "49", "de", "EUR", 5),
    city("Paris", "Ile-de-France", "33", "fr", "EUR", 5),
    city("New York", "New York", "1", "en", "USD", 5),
    city("Austin", "Texas", "1", "en", "USD", 5),
    city("Kiryat Motzkin", "Kraiot", "972", "en", "USD", 7),
];
#[rustfmt::skip]
pub(crate) const STREETS: &[&str] = &[
    "Lenina St", "Tverskaya St", "Nevsky Prospekt", "Ploshad Mira", "Abay Ave", "Baker Street",
    "Unter den Linden", "Rue de Rivoli", "Main Street", "Oak Avenue", "Market Street",
    "Hauptstrasse",
];
#[rustfmt::skip]
pub(crate) const EMAIL_DOMAINS: &[&str] = &[
    "gmail.com", "yandex.ru", "mail.ru", "outlook.com", "proton.me", "icloud.com", "example.org",
];

pub(crate) struct Product {
    pub(crate) name: &'static str,
    pub(crate) brands: &'static [&'static str],
    pub(crate) sizes: &'static [&'static str],
    pub(crate) price: (i64, i64),
}

const fn product(
    name: &'static str,
    brands: &'static [&'static str],
    sizes: &'static [&'static str],
    price: (i64, i64),
) -> Product {
    Product {
        name,
        brands,
        sizes,
        price,
    }
}

const CLOTHES: &[&str] = &["XS", "S", "M", "L", "XL", "44", "46", "48"];
const SHOES: &[&str] = &["38", "39", "40", "41", "42", "43", "44"];
const NO_SIZE: &[&str] = &["0"];
#[rustfmt::skip]
pub(crate) const PRODUCTS: &[Product] = &[
    product("Mascaras", &["Vivienne Sabo", "Maybelline", "L'Oreal"], NO_SIZE, (150, 1_500)),
    product("Lipstick", &["MAC", "Maybelline", "Nyx"], NO_SIZE, (200, 2_500)),
    product("Sneakers", &["Nike", "Adidas", "Puma", "New Balance"], SHOES, (3_000, 15_000)),
    product("T-shirt", &["Uniqlo", "H&M", "Zara"], CLOTHES, (500, 3_000)),
    product("Jeans", &["Levi's", "Wrangler", "Lee"], CLOTHES, (2_000, 9_000)),
    product("Phone case", &["Spigen", "OtterBox", "Baseus"], NO_SIZE, (300, 2_000)),
    product("Headphones", &["Sony", "JBL", "Sennheiser"], NO_SIZE, (1_500, 30_000)),
    product("Backpack", &["Xiaomi", "Samsonite", "Herschel"], NO_SIZE, (1_200, 12_000)),
    product("Coffee beans 1kg", &["Lavazza", "Illy", "Jacobs"], NO_SIZE, (900, 3_500)),
    product("Paperback book", &["Penguin", "Eksmo", "AST"], NO_SIZE, (250, 1_200)),
    product("Power bank", &["Anker", "Xiaomi", "Baseus"], NO_SIZE, (1_000, 6_000)),
    product("Electric kettle", &["Tefal", "Bosch", "Philips"], NO_SIZE, (1_500, 7_000)),
];
pub(crate) const SALES: &[i64] = &[0, 0, 0, 0, 5, 10, 15, 20, 25, 30, 40, 50, 70];
pub(crate) const ITEM_STATUSES: &[i64] = &[202, 202, 200, 201, 300, 400];
pub(crate) const ENTRIES: &[&str] = &["WBIL", "WBRU", "WBKZ", "WBEU"];
pub(crate) const PROVIDERS: &[&str] = &["wbpay", "sbp", "visa", "mastercard", "applepay"];
#[rustfmt::skip]
pub(crate) const BANKS: &[&str] = &[
    "alpha", "sber", "tinkoff", "vtb", "kaspi", "halyk", "barclays", "deutsche", "chase",
];
pub(crate) const DELIVERY_SERVICES: &[&str] =
    &["meest", "cdek", "dhl", "boxberry", "pochta", "ups", "dpd"];
pub(crate) const DELIVERY_COSTS: &[i64] = &[0, 0, 200, 350, 500, 990, 1_500];
